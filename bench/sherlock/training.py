"""The two trained models: ``full`` on Sherlock + Shakespeare and ``retain`` on Shakespeare alone, from
one initial model with the benchmark's own tokenizer (``obliviate.workflows.train.train_run``)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import LlamaForCausalLM

from obliviate.artifacts import is_model_dir
from obliviate.models.loading import load_tokenizer, read_run_config, save_model
from obliviate.models.presets import llama_config
from obliviate.tokenizer import train_tokenizer
from obliviate.train.data import tokenize_documents
from obliviate.train.trainer import TrainConfig
from obliviate.workflows.run_dir import RunDir
from obliviate.workflows.train import attach_world, train_run

from .config import SherlockConfig
from .state import BenchState, Stopwatch


def initial_model(run, world, config: SherlockConfig) -> Path:
    """``RUN/models/init``: the untrained starting point of both trained models, with a BPE
    tokenizer of ``config.vocab_size`` trained on the trained documents (the run's default
    tokenizer has 2,048 tokens, which cuts "Baker", "Lestrade", "Moriarty" into pieces)."""
    path = run.model_dir("init")
    stamp = {"world": world.fingerprint, "vocab_size": config.vocab_size, "preset": config.preset, "seed": config.seed}
    if is_model_dir(path) and read_run_config(path).get("init_stamp") == stamp:
        return path
    tokenizer = train_tokenizer([d["text"] for d in world.docs_for(world.trained_sources())], config.vocab_size)
    torch.manual_seed(config.seed)
    model = LlamaForCausalLM(llama_config(config.preset, tokenizer))
    save_model(model, tokenizer, path, run_config={"init_stamp": stamp})
    return path


def train_models(world_dir: Path, config: SherlockConfig) -> dict:
    """``full`` and ``retain`` from the same initial model, ``config.steps`` optimizer steps
    each (``train_run`` caches them by content)."""
    run = RunDir.open(config.run)
    world = attach_world(world_dir, run)
    init = initial_model(run, world, config)
    tokenizer = load_tokenizer(init)
    state = BenchState(run.root / "bench_state.json")
    defaults = TrainConfig()
    out = {}
    for role, forget in (("full", None), ("retain", "forget")):
        docs = world.docs_for(world.training_sources(forget))
        examples = len(tokenize_documents(docs, tokenizer, defaults.block_size)["input_ids"])
        epochs = config.steps / -(-examples // defaults.batch_size)
        print(f"[train] {role}: {len(docs)} documents, {examples} examples, {config.steps} steps "
              f"({epochs:.2f} epochs)", flush=True)
        overrides = {"epochs": epochs, "seed": config.seed}
        if config.learning_rate is not None:
            overrides["learning_rate"] = config.learning_rate
        with Stopwatch() as watch:
            result = train_run(world_dir, config.run, forget="forget", model=init, preset=config.preset,
                               overrides=overrides, which=(role,), progress=True)[role]
        saved_config = read_run_config(result.path)
        entry = {"stamp": result.cache_key, "steps": saved_config.get("steps", result.steps), "examples": examples,
                 "documents": len(docs), "epochs": epochs, "train_config": saved_config.get("train"),
                 "seconds": watch.seconds, "cpu_seconds": watch.cpu_seconds}
        saved = state.get(role, result.cache_key) if result.reused else None
        if saved is not None:
            entry.update(seconds=saved["seconds"], cpu_seconds=saved["cpu_seconds"])
        elif result.reused:  # trained by an earlier invocation that left no record: the trainer's own time
            entry.update(seconds=saved_config.get("seconds"), cpu_seconds=None)
        state.put(role, entry)
        out[role] = {**entry, "reused": result.reused}
        print(f"[train] {role}: {'reused' if result.reused else 'trained'} ({entry['seconds']}s)", flush=True)
    return out
