"""``obliviate world``: the embedded synthetic world, or a world built from your own text."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from obliviate.cli.app import app, check_preset, check_world_out
from obliviate.errors import UserError


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
    qa: Optional[Path] = typer.Option(None, "--qa", help="Text world: QA items (docs/design.md schema) jsonl; source_id may be a source id or name."),
    probes: Optional[Path] = typer.Option(None, "--probes", help="Text world: familiarity probes jsonl: {prompt, references, target_terms}."),
    anchors: Optional[Path] = typer.Option(None, "--anchors", help="Text world: WHP anchored-term dictionary {term: list of alternatives} (else WHP discovers one)."),
    benchmark: Optional[str] = typer.Option(None, "--benchmark", help="Build the world from a benchmark dataset instead: tofu (locuslab/TOFU, through `datasets`)."),
    forget: Optional[str] = typer.Option(None, "--forget", help="Benchmark world: the forget split commands use by default (tofu: forget01, forget05 or forget10; default forget10)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Benchmark world: a local copy of the dataset repository (e.g. `huggingface-cli download locuslab/TOFU --repo-type dataset --local-dir DIR`) instead of the hub."),
) -> None:
    """Generate the embedded synthetic world, (--from-text) build a world from your own text, or
    (--benchmark tofu) build one from a benchmark's dataset."""
    check_world_out(out)   # a world replaces only an earlier world, never a user's directory
    if benchmark is not None:
        _benchmark_world(benchmark, forget, data_dir, out, preset=preset, seed=seed, from_text=from_text)
        return
    if forget is not None or data_dir is not None:
        raise UserError(f"{'--forget' if forget is not None else '--data-dir'} needs --benchmark NAME")
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
    path = make_world(check_preset(preset), seed, out)
    world = load_world(path)
    typer.echo(
        f"world {preset}/seed {seed} -> {path}: {len(world.sources)} sources, {len(world.corpus)} documents, "
        f"{len(world.qa)} QA items, splits {', '.join(f'{k}={len(v)}' for k, v in world.splits.items())}"
    )


BENCHMARKS = ("tofu",)


def _benchmark_world(benchmark: str, forget: Optional[str], data_dir: Optional[Path], out: Path, **other) -> None:
    """``obliviate world --benchmark tofu``: the benchmark's dataset as a world."""
    if benchmark not in BENCHMARKS:
        raise UserError(f"unknown --benchmark {benchmark!r}; choose one of: {', '.join(BENCHMARKS)}")
    given = [f"--{name.replace('_', '-')}" for name, value in other.items() if value not in (None, [])]
    if given:
        raise UserError(f"{given[0]} does not apply to a benchmark world")
    if data_dir is not None and not data_dir.is_dir():
        raise UserError(f"--data-dir {data_dir} is not a directory")
    from obliviate.world import load_world
    from obliviate.world.tofu import HUB_ID, TofuConfig, build_tofu_world

    config = TofuConfig(forget=forget or "forget10", data=str(data_dir) if data_dir is not None else HUB_ID)
    world = load_world(build_tofu_world(out, config))
    counts = world.manifest["counts"]
    typer.echo(f"world {benchmark} ({config.data}) -> {out}: {counts['authors']} authors, {len(world.corpus)} training "
               f"documents, {len(world.qa)} QA items, splits "
               f"{', '.join(f'{k}={len(v)}' for k, v in world.splits.items())}; default forget split {config.forget}")
