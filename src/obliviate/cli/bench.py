"""``obliviate bench`` (the leaderboard) and ``obliviate demo`` (the whole pipeline, small)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from obliviate.cli.app import OverwriteOption, app, check_preset, check_run_out
from obliviate.errors import UserError


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


@app.command("demo")
def demo_command(
    preset: str = typer.Option("tiny", help="World preset to run the whole pipeline on."),
    run: Path = typer.Option(Path("runs/demo"), help="Run directory (reused: steps already done are skipped)."),
    seed: int = typer.Option(0, help="World seed."),
    overwrite: OverwriteOption = False,
) -> None:
    """Run the whole pipeline on the embedded world: world, training, unlearning, evaluation, report."""
    from obliviate.workflows.demo import run_demo

    check_preset(preset)
    check_run_out(run, overwrite)
    run_demo(preset, run, seed=seed, echo=typer.echo)


@app.command("bench")
def bench_command(
    preset: str = typer.Option("tiny", help="World preset."),
    run: Path = typer.Option(Path("runs/bench"), help="Run directory (steps already done are reused)."),
    seed: Optional[int] = typer.Option(None, help="World and model seed (default 0)."),
    seeds: Optional[str] = typer.Option(None, help="Comma-separated seeds, e.g. 0,1,2: one benchmark per seed in "
                                                   "RUN/seed<k>, and RUN/leaderboard.md with means, 95 % intervals "
                                                   "and significance vs the retrained model."),
    splits: str = typer.Option("forget01,forget05,forget10", help="Comma-separated forget splits."),
    methods: Optional[str] = typer.Option(None, help="Comma-separated methods (default: every post-hoc method)."),
    sinks: bool = typer.Option(True, "--sinks/--no-sinks", help="Also train a sink model and grade the switch."),
    attacks: str = typer.Option("relearn,icl,adversarial,quantize,format",
                                help="Attacks run on the forget10 models ('' for none)."),
    whp: bool = typer.Option(True, "--whp/--no-whp",
                             help="Saga section: WHP and --saga-methods on the saga vs the model retrained without it."),
    saga_methods: str = typer.Option("grad_diff,npo", help="Comma-separated methods run on the saga next to WHP."),
    curve_every: int = typer.Option(10, help="Familiarity curve: measure every this many WHP fine-tuning steps."),
    overwrite: OverwriteOption = False,
) -> None:
    """Leaderboard: every method on forget01/05/10 and WHP on the saga, graded against retrained models, then attacked."""
    from obliviate.attacks.runner import parse_attack_names
    from obliviate.methods.registry import get_method
    from obliviate.workflows.bench.leaderboard import DENSE_METHODS, BenchConfig, run_bench
    from obliviate.workflows.bench.seeds import parse_seeds, run_seeds
    from obliviate.world.loader import FORGET_SPLITS

    check_preset(preset)
    if seeds is not None and seed is not None:
        raise UserError("give --seed or --seeds, not both")
    seed_list = parse_seeds(seeds) if seeds is not None else None
    config = BenchConfig(
        preset=preset, seed=0 if seed is None else seed,
        splits=_names(splits),
        methods=_names(methods) if methods else DENSE_METHODS,
        sinks=sinks, attacks=_names(attacks), progress=True,
        whp=whp, saga_methods=_names(saga_methods),
        curve_every=curve_every,
    )
    # names are checked before hours of work: the bench runs on an embedded world's splits
    if not config.splits:
        raise UserError("--splits names no split")
    unknown = [s for s in config.splits if s not in FORGET_SPLITS]
    if unknown:
        raise UserError(f"unknown split {unknown[0]!r} for --splits; valid: {', '.join(FORGET_SPLITS)}")
    if "whp" in config.methods:
        raise UserError("whp targets the saga, not author splits: it runs in the saga section (--whp)")
    for name in config.methods + (config.saga_methods if config.whp else ()):
        get_method(name)
    if config.attacks:
        parse_attack_names(",".join(config.attacks))
    if config.whp and config.curve_every < 1:
        raise UserError(f"the familiarity curve needs --curve-every >= 1, got {config.curve_every}")
    check_run_out(run, overwrite)
    if seed_list is not None:
        run_seeds(run, config, seed_list, command=f"obliviate bench --preset {preset} --run {run} --seeds {seeds}")
    else:
        run_bench(run, config, command=f"obliviate bench --preset {preset} --run {run}")
    typer.echo(f"leaderboard -> {run / 'leaderboard.md'} (and leaderboard.json, plots/)")
