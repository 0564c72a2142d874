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
    qa_train: bool = typer.Option(True, "--qa-train/--no-qa-train", help="Text world: also train on the --qa pairs (one document each, in the evaluation format), as TOFU fine-tunes on its QA; --no-qa-train: the text alone."),
    qa_repeats: Optional[int] = typer.Option(None, "--qa-repeats", help="Text world: copies of each QA document in the training corpus (default 2: one copy is too little beside long text, see bench/bench_text_qa.py)."),
    probes: Optional[Path] = typer.Option(None, "--probes", help="Text world: familiarity probes jsonl: {prompt, references, target_terms}."),
    anchors: Optional[Path] = typer.Option(None, "--anchors", help="Text world: WHP anchored-term dictionary {term: list of alternatives} (else WHP discovers one)."),
    benchmark: Optional[str] = typer.Option(None, "--benchmark", help="Build the world from a benchmark dataset instead (through `datasets`): tofu (locuslab/TOFU) or muse (muse-bench/MUSE-News or MUSE-Books: raw text trained on, KnowMem QA, VerbMem prompts; forget split 'forget')."),
    forget: Optional[str] = typer.Option(None, "--forget", help="Benchmark world: the forget split commands use by default (tofu: forget01, forget05 or forget10; default forget10). MUSE has one forget split, 'forget'."),
    corpus: Optional[str] = typer.Option(None, "--corpus", help="--benchmark muse: news (muse-bench/MUSE-News, the default) or books (muse-bench/MUSE-Books)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Benchmark world: a local copy of the dataset repository (e.g. `huggingface-cli download locuslab/TOFU --repo-type dataset --local-dir DIR`; muse: muse-bench/MUSE-News) instead of the hub."),
) -> None:
    """Generate the embedded synthetic world, (--from-text) build a world from your own text, or
    (--benchmark tofu|muse) build one from a benchmark's dataset."""
    check_world_out(out)   # a world replaces only an earlier world, never a user's directory
    if benchmark is not None:
        _benchmark_world(benchmark, forget, data_dir, out, corpus=corpus, doc_chars=doc_chars,
                         preset=preset, seed=seed, from_text=from_text)
        return
    if forget is not None or data_dir is not None or corpus is not None:
        flag = "--forget" if forget is not None else "--data-dir" if data_dir is not None else "--corpus"
        raise UserError(f"{flag} needs --benchmark NAME")
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
            qa=qa, train_on_qa=qa_train, probes=probes, anchors=anchors,
        )
        if qa_repeats is not None:
            if not (qa and qa_train):
                raise UserError("--qa-repeats needs --qa FILE (and QA training, on unless --no-qa-train)")
            config.qa_repeats = qa_repeats
        typer.echo(describe_text_world(build_text_world(inputs, out, config)))
        return
    text_only = {"--forget-sources": forget_sources, "--holdout-sources": holdout_sources,
                 "--heading-regex": heading_regex, "--source-chars": source_chars, "--doc-chars": doc_chars,
                 "--unwrap-lines": unwrap_lines, "--qa": qa, "--probes": probes, "--anchors": anchors,
                 "--no-qa-train": not qa_train, "--qa-repeats": qa_repeats is not None,
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


BENCHMARKS = ("tofu", "muse")


def _benchmark_world(benchmark: str, forget: Optional[str], data_dir: Optional[Path], out: Path,
                     corpus: Optional[str] = None, doc_chars: Optional[int] = None, **other) -> None:
    """``obliviate world --benchmark tofu|muse``: the benchmark's dataset as a world."""
    if benchmark not in BENCHMARKS:
        raise UserError(f"unknown --benchmark {benchmark!r}; choose one of: {', '.join(BENCHMARKS)}")
    given = [f"--{name.replace('_', '-')}" for name, value in other.items() if value not in (None, [])]
    if given:
        raise UserError(f"{given[0]} does not apply to a benchmark world")
    if data_dir is not None and not data_dir.is_dir():
        raise UserError(f"--data-dir {data_dir} is not a directory")
    if benchmark == "muse":
        _muse_world(forget, data_dir, out, corpus, doc_chars)
        return
    for flag, value in (("--corpus", corpus), ("--doc-chars", doc_chars)):
        if value is not None:
            raise UserError(f"{flag} does not apply to --benchmark tofu")
    from obliviate.world import load_world
    from obliviate.world.tofu import HUB_ID, TofuConfig, build_tofu_world

    config = TofuConfig(forget=forget or "forget10", data=str(data_dir) if data_dir is not None else HUB_ID)
    world = load_world(build_tofu_world(out, config))
    counts = world.manifest["counts"]
    typer.echo(f"world {benchmark} ({config.data}) -> {out}: {counts['authors']} authors, {len(world.corpus)} training "
               f"documents, {len(world.qa)} QA items, splits "
               f"{', '.join(f'{k}={len(v)}' for k, v in world.splits.items())}; default forget split {config.forget}")


def _muse_world(forget: Optional[str], data_dir: Optional[Path], out: Path, corpus: Optional[str],
                doc_chars: Optional[int]) -> None:
    from obliviate.world import load_world
    from obliviate.world.from_text import DEFAULT_DOC_CHARS
    from obliviate.world.muse import FORGET_NAME, MuseConfig, build_muse_world

    if forget is not None:
        raise UserError(f"--forget does not apply to --benchmark muse: MUSE has one forget split, {FORGET_NAME!r}")
    config = MuseConfig(corpus=corpus or "news", data=str(data_dir) if data_dir is not None else None,
                        doc_chars=DEFAULT_DOC_CHARS if doc_chars is None else doc_chars)
    world = load_world(build_muse_world(out, config))
    counts = world.manifest["counts"]
    typer.echo(f"world muse/{config.corpus} ({config.source}) -> {out}: {counts['sources']} sources, "
               f"{len(world.corpus)} documents, {len(world.qa)} KnowMem QA items, {counts['verbmem']} VerbMem prompts, "
               f"splits {', '.join(f'{k}={len(v)}' for k, v in world.splits.items())}; forget split {FORGET_NAME}")
