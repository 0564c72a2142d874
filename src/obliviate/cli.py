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
    preset: Optional[str] = typer.Option(None, help="World size: micro (tests, seconds), tiny (demo, minutes; the default), small (benchmarks)."),
    seed: Optional[int] = typer.Option(None, help="Seed (default 0): the same preset and seed give byte-identical files."),
    out: Path = typer.Option(..., help="Directory to write the world into (sources, corpus, QA, splits, anchors, prompts)."),
    from_text: Optional[List[Path]] = typer.Option(None, "--from-text", help="Build the world from these UTF-8 text or jsonl ({\"text\", \"source\"?, \"title\"?}) files instead (repeatable; files may also follow it)."),
    more_text: Optional[List[Path]] = typer.Argument(None, metavar="FILE", help="More input files for --from-text.", show_default=False),
    forget_sources: List[str] = typer.Option([], "--forget-sources", help="Text world: sources to forget: ids ('0,3'), names, or re:PATTERN matched in names (repeatable)."),
    forget_name: str = typer.Option("forget", "--forget-name", help="Text world: name of the forget split."),
    holdout_sources: List[str] = typer.Option([], "--holdout-sources", help="Text world: sources never trained on (membership inference, held-out perplexity); same syntax."),
    heading_regex: Optional[str] = typer.Option(None, "--heading-regex", help="Text world: a line matching it starts a new source named by the heading (its first group, if any)."),
    source_chars: Optional[int] = typer.Option(None, "--source-chars", help="Text world: cut sources into pieces of at most this many characters."),
    doc_chars: Optional[int] = typer.Option(None, "--doc-chars", help="Text world: longest training document in characters (default 1200, cut on paragraph / sentence boundaries)."),
    unwrap_lines: bool = typer.Option(False, "--unwrap-lines", help="Text world: join hard-wrapped lines inside a paragraph with spaces."),
    qa: Optional[Path] = typer.Option(None, "--qa", help="Text world: QA items (DESIGN.md schema) jsonl; source_id may be a source id or name."),
    probes: Optional[Path] = typer.Option(None, "--probes", help="Text world: familiarity probes jsonl: {prompt, references, target_terms}."),
    anchors: Optional[Path] = typer.Option(None, "--anchors", help="Text world: WHP anchored-term dictionary {term: list of alternatives} (else WHP discovers one)."),
) -> None:
    """Generate the embedded synthetic world, or (--from-text) build a world from your own text."""
    inputs = list(from_text or []) + list(more_text or [])
    if inputs and not from_text:
        raise UserError(f"unexpected argument {str(inputs[0])!r}: input files go after --from-text")
    if from_text:
        from obliviate.world.from_text import DEFAULT_DOC_CHARS, TextWorldConfig, build_text_world, describe_text_world

        if preset is not None or seed is not None:
            raise UserError("--preset/--seed are for the embedded world; a text world's model size is chosen with "
                            "`obliviate train --preset`")
        config = TextWorldConfig(
            forget_sources=tuple(forget_sources), forget_name=forget_name, holdout_sources=tuple(holdout_sources),
            heading_regex=heading_regex, source_chars=source_chars,
            doc_chars=DEFAULT_DOC_CHARS if doc_chars is None else doc_chars, unwrap_lines=unwrap_lines,
            qa=qa, probes=probes, anchors=anchors,
        )
        typer.echo(describe_text_world(build_text_world(inputs, out, config)))
        return
    text_only = {"--forget-sources": forget_sources, "--holdout-sources": holdout_sources,
                 "--heading-regex": heading_regex, "--source-chars": source_chars, "--doc-chars": doc_chars,
                 "--unwrap-lines": unwrap_lines, "--qa": qa, "--probes": probes, "--anchors": anchors,
                 "--forget-name": forget_name != "forget"}
    given = [flag for flag, value in text_only.items() if value]
    if given:
        raise UserError(f"{given[0]} needs --from-text FILE (the embedded world has its own splits)")

    from obliviate.workflows.train import make_world
    from obliviate.world import load_world

    preset = preset or "tiny"
    seed = 0 if seed is None else seed
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
    forget: Optional[str] = typer.Option(None, help="Forget split the retain (gold standard) model leaves out: forget01/05/10, saga or a text world's split (default: forget10, or a text world's forget split)."),
    model: Optional[Path] = typer.Option(None, help="Continue training this local HF causal LM (keeps its tokenizer) instead of training from scratch."),
    arch: str = typer.Option("dense", help="dense (Llama) or sinks (native unlearning: per-source sink neurons)."),
    preset: Optional[str] = typer.Option(None, help="Model size preset (default: the world's preset)."),
    only: Optional[str] = typer.Option(None, help="Train only 'full' or only 'retain'."),
    set_: List[str] = typer.Option([], "--set", help="Training override key=value (epochs, learning_rate, batch_size, sinks.p_gen, ...)."),
    quiet: bool = typer.Option(False, help="No progress bars."),
) -> None:
    """Train the full model and the retain model (the model that never saw the forget split)."""
    from obliviate.config import parse_assignments
    from obliviate.workflows.train import train_run
    from obliviate.train.trainer import describe

    if preset is not None:
        _check_preset(preset)
    which = ("full", "retain") if only is None else (only,)
    from obliviate.world.loader import resolve_forget

    results = train_run(world, run, forget=resolve_forget(world, forget), model=model, arch=arch, preset=preset,
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
    from obliviate.workflows.demo import run_demo

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
    whp: bool = typer.Option(True, "--whp/--no-whp",
                             help="Saga section: WHP and --saga-methods on the saga vs the model retrained without it."),
    saga_methods: str = typer.Option("grad_diff,npo", help="Comma-separated methods run on the saga next to WHP."),
    curve_every: int = typer.Option(10, help="Familiarity curve: measure every this many WHP fine-tuning steps."),
) -> None:
    """Leaderboard: every method on forget01/05/10 and WHP on the saga, graded against retrained models, then attacked."""
    from obliviate.workflows.bench.leaderboard import DENSE_METHODS, BenchConfig, run_bench

    config = BenchConfig(
        preset=_check_preset(preset), seed=seed,
        splits=tuple(s for s in splits.split(",") if s),
        methods=tuple(m for m in methods.split(",") if m) if methods else DENSE_METHODS,
        sinks=sinks, attacks=tuple(a for a in attacks.split(",") if a), progress=True,
        whp=whp, saga_methods=tuple(m for m in saga_methods.split(",") if m),
        curve_every=curve_every,
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
