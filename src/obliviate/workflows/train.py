"""The Python API for the pipeline steps: world -> tokenizer -> full and retain models.

    from obliviate.workflows.train import make_world, train_run
    make_world("micro", seed=0, out="runs/demo/world")
    models = train_run("runs/demo/world", "runs/demo", forget="forget10")
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Iterable

from obliviate.artifacts import file_fingerprint
from obliviate.config import apply_overrides
from obliviate.errors import UserError
from obliviate.io import atomic_directory, atomic_write_json, read_json
from obliviate.models.loading import load_model, load_tokenizer
from obliviate.tokenizer import train_tokenizer
from obliviate.tracking import check_report_to
from obliviate.train.trainer import TrainConfig, TrainResult, train_model
from obliviate.workflows.run_dir import DEFAULT_FORGET, RunDir
from obliviate.world import World, load_world
from obliviate.world.generator import generate_world

log = logging.getLogger(__name__)

VOCAB_BY_PRESET = {"micro": 1024, "tiny": 2048, "small": 4096}


def make_world(preset: str, seed: int, out: str | os.PathLike) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"output path {out} exists and is not a directory")
    return generate_world(preset, seed, out)


def attach_world(world_dir: str | os.PathLike, run: RunDir) -> World:
    """Load ``world_dir`` and keep a copy in ``RUN/world`` so the run is self-contained."""
    world = load_world(world_dir)
    source = Path(world_dir).resolve()
    if source != run.world_dir.resolve():
        if not run.world_dir.exists() or load_world(run.world_dir).fingerprint != world.fingerprint:
            with atomic_directory(run.world_dir) as tmp:
                for item in source.iterdir():
                    if item.is_file():
                        shutil.copy2(item, tmp / item.name)
        world = load_world(run.world_dir)
    return world


def prepare_tokenizer(run: RunDir, world: World, vocab_size: int | None = None):
    """Train (or reuse) the run's BPE tokenizer on every document of the world.

    Held-out sources are included on purpose: a tokenizer fitted on trained text only
    splits held-out names into rare pieces, so any model (even one that never saw the
    forget split) tells forget from held-out answers by their token statistics, and the
    membership-inference AUC of the retain model drifts far from 0.5 (0.94 on tiny).
    Real tokenizers come from a corpus far larger than any forget or held-out set."""
    preset = world.manifest.get("preset", "tiny")
    vocab_size = vocab_size or VOCAB_BY_PRESET.get(preset, 2048)
    stamp = {"world": world.fingerprint, "vocab_size": vocab_size, "documents": "all"}
    stamp_path = run.tokenizer_dir / "obliviate_tokenizer.json"
    if stamp_path.is_file() and read_json(stamp_path) == stamp:
        return load_tokenizer(run.tokenizer_dir)
    tokenizer = train_tokenizer([d["text"] for d in world.corpus], vocab_size=vocab_size)
    with atomic_directory(run.tokenizer_dir) as tmp:
        tokenizer.save_pretrained(str(tmp))
        atomic_write_json(tmp / "obliviate_tokenizer.json", stamp)
    return load_tokenizer(run.tokenizer_dir)


def texts_by_source(world: World, sources: Iterable[int]) -> dict[int, list[str]]:
    grouped: dict[int, list[str]] = {}
    for doc in world.docs_for(set(sources)):
        grouped.setdefault(int(doc["source_id"]), []).append(doc["text"])
    return grouped


def train_run(
    world_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    forget: str = DEFAULT_FORGET,
    model: str | os.PathLike | None = None,
    arch: str = "dense",
    preset: str | None = None,
    overrides: dict | None = None,
    which: tuple[str, ...] = ("full", "retain"),
    progress: bool = True,
    report_to: str = "none",
    _stop_after_steps: int | None = None,
) -> dict[str, TrainResult]:
    """Train the ``full`` model (all trained sources) and/or the ``retain`` model
    (all but ``forget``: the gold standard) into ``RUN/models``; ``report_to``
    (tensorboard, wandb) logs each into ``RUN/models/<name>/logs``."""
    from accelerate import PartialState

    check_report_to(report_to)
    # under `accelerate launch` the main process writes the run's world copy and tokenizer;
    # the others then read them (no two processes write one file)
    with PartialState().main_process_first():
        run = RunDir.open(run_dir)
        world = attach_world(world_dir, run)
        world.split_sources(forget)  # validates the split name
        init_model = Path(model) if model else None
        if init_model is not None:
            load_model(init_model)  # validates path, config and causal-LM head early
            tokenizer = load_tokenizer(init_model)
            tokenizer_key = file_fingerprint([p for p in init_model.iterdir() if p.name.startswith("tokenizer")])
        else:
            # the model preset sizes the vocabulary too (a text world has no preset of its own)
            tokenizer = prepare_tokenizer(run, world, VOCAB_BY_PRESET.get(preset) if preset else None)
            tokenizer_key = file_fingerprint([p for p in run.tokenizer_dir.iterdir() if p.is_file()])
    config = apply_overrides(TrainConfig(preset=preset or world.manifest.get("preset", "tiny"), arch=arch),
                             overrides or {})

    results: dict[str, TrainResult] = {}
    for role in which:
        if role == "full":
            sources, out_dir = world.training_sources(None), run.full_model
        elif role == "retain":
            sources, out_dir = world.training_sources(forget), run.retain_model(forget)
        else:
            raise UserError(f"unknown model role {role!r}; valid: full, retain")
        if arch == "sinks":
            out_dir = out_dir.with_name(out_dir.name + "-sinks")
        docs = world.docs_for(sources)
        after = None
        if arch == "sinks":
            grouped = texts_by_source(world, sources)
            after = lambda m, grouped=grouped: m.fit_router(grouped, tokenizer)  # noqa: E731
        log.info("training %s on %d sources (%d documents)", role, len(sources), len(docs))
        results[role] = train_model(
            docs, tokenizer, out_dir, config,
            cache_inputs={"world": world.fingerprint, "sources": sorted(sources), "tokenizer": tokenizer_key},
            init_model=init_model, progress=progress, after_training=after, report_to=report_to,
            _stop_after_steps=_stop_after_steps,
        )
    return results
