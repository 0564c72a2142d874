"""The ``obliviate`` command line (Typer). User mistakes exit 2 with one line on stderr."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import List, Optional

import typer

from obliviate.errors import UserError

app = typer.Typer(
    name="obliviate",
    help="Machine unlearning for language models: make a model forget, and prove it is gone.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

PRESETS = ("micro", "tiny", "small")


def _check_preset(preset: str) -> str:
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    return preset


@app.command("world")
def world_command(
    preset: str = typer.Option("tiny", help="World size: micro (tests, seconds), tiny (demo, minutes), small (benchmarks)."),
    seed: int = typer.Option(0, help="Seed: the same preset and seed give byte-identical files."),
    out: Path = typer.Option(..., help="Directory to write the world into (sources, corpus, QA, splits, anchors, prompts)."),
) -> None:
    """Generate the embedded synthetic world (authors, a saga, general knowledge, QA, splits)."""
    from obliviate.pipeline import make_world
    from obliviate.world import load_world

    path = make_world(_check_preset(preset), seed, out)
    world = load_world(path)
    typer.echo(
        f"world {preset}/seed {seed} -> {path}: {len(world.sources)} sources, {len(world.corpus)} documents, "
        f"{len(world.qa)} QA items, splits {', '.join(f'{k}={len(v)}' for k, v in world.splits.items())}"
    )


@app.command("train")
def train_command(
    world: Path = typer.Option(..., help="World directory (from `obliviate world` or `obliviate world --from-text`)."),
    run: Path = typer.Option(..., help="Run directory; models go to RUN/models/full and RUN/models/retain."),
    forget: str = typer.Option("forget10", help="Forget split the retain (gold standard) model leaves out: forget01/05/10 or saga."),
    model: Optional[Path] = typer.Option(None, help="Continue training this local HF causal LM (keeps its tokenizer) instead of training from scratch."),
    arch: str = typer.Option("dense", help="dense (Llama) or sinks (native unlearning: per-source sink neurons)."),
    preset: Optional[str] = typer.Option(None, help="Model size preset (default: the world's preset)."),
    only: Optional[str] = typer.Option(None, help="Train only 'full' or only 'retain'."),
    set_: List[str] = typer.Option([], "--set", help="Training override key=value (epochs, learning_rate, batch_size, sinks.p_gen, ...)."),
    quiet: bool = typer.Option(False, help="No progress bars."),
) -> None:
    """Train the full model and the retain model (the model that never saw the forget split)."""
    from obliviate.config import parse_assignments
    from obliviate.pipeline import train_run
    from obliviate.train.trainer import describe

    if preset is not None:
        _check_preset(preset)
    which = ("full", "retain") if only is None else (only,)
    results = train_run(world, run, forget=forget, model=model, arch=arch, preset=preset,
                        overrides=parse_assignments(set_), which=which, progress=not quiet)
    for role, result in results.items():
        typer.echo(f"{role}: {describe(result)}")


@app.command("demo")
def demo_command(
    preset: str = typer.Option("tiny", help="World preset to run the whole pipeline on."),
    run: Path = typer.Option(Path("runs/demo"), help="Run directory (reused: steps already done are skipped)."),
    seed: int = typer.Option(0, help="World seed."),
) -> None:
    """Run the whole pipeline on the embedded world: world, training, unlearning, evaluation, report."""
    from obliviate.demo import run_demo

    run_demo(_check_preset(preset), run, seed=seed)


@app.command("bench")
def bench_command(
    preset: str = typer.Option("tiny", help="World preset."),
    run: Path = typer.Option(Path("runs/bench"), help="Run directory (steps already done are reused)."),
    seed: int = typer.Option(0, help="World seed."),
    splits: str = typer.Option("forget01,forget05,forget10", help="Comma-separated forget splits."),
    methods: Optional[str] = typer.Option(None, help="Comma-separated methods (default: every post-hoc method)."),
    sinks: bool = typer.Option(True, "--sinks/--no-sinks", help="Also train a sink model and grade the switch."),
    attacks: str = typer.Option("relearn,icl,adversarial", help="Attacks run on the forget10 models ('' for none)."),
) -> None:
    """Leaderboard: every method on forget01/05/10, graded against retrained models, then attacked."""
    from obliviate.bench.leaderboard import DENSE_METHODS, BenchConfig, run_bench

    config = BenchConfig(
        preset=_check_preset(preset), seed=seed,
        splits=tuple(s for s in splits.split(",") if s),
        methods=tuple(m for m in methods.split(",") if m) if methods else DENSE_METHODS,
        sinks=sinks, attacks=tuple(a for a in attacks.split(",") if a), progress=True,
    )
    run_bench(run, config, command=f"obliviate bench --preset {preset} --run {run}")
    typer.echo(f"leaderboard -> {run / 'leaderboard.md'} (and leaderboard.json, plots/)")


def _register_optional() -> None:
    """Commands whose modules are optional at import time register themselves here."""
    from obliviate import commands

    commands.register(app)


def main(argv: Optional[list[str]] = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    _register_optional()
    try:
        app(args=argv, prog_name="obliviate")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: completed steps are saved; run the same command again to resume", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
