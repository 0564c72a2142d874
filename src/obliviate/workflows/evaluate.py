"""The retain model's evaluation as a cached reference (forget quality, PrivLeak).

The cache file is named by the evaluation's cache key, a hash of (retain model files by
content, world fingerprint, forget split, metric config, package version): a retrained
model, another world or other settings give another key, so a stale cache is never read.
"""

from __future__ import annotations

import os
from pathlib import Path

from obliviate.errors import UserError
from obliviate.eval.evaluator import EvalConfig, Reference, eval_cache_key, evaluate, load_reference
from obliviate.eval.fingerprint import model_dir_fingerprint
from obliviate.io import atomic_write_json, read_json
from obliviate.world.loader import World

__all__ = ["Reference", "default_cache_dir", "load_reference", "reference_for", "resolve_retain_model"]


def resolve_retain_model(path: str | os.PathLike) -> Path:
    """A retain model directory, given it or a run directory holding ``models/retain``."""
    path = Path(path)
    if (path / "config.json").is_file():
        return path
    candidate = path / "models" / "retain"
    if (candidate / "config.json").is_file():
        return candidate
    if not path.exists():
        raise UserError(f"retain model path does not exist: {path}")
    raise UserError(f"{path} is neither a model directory nor a run directory with models/retain")


def default_cache_dir(model_dir: Path) -> Path:
    """``RUN/eval/cache`` for ``RUN/models/retain``; else a hidden folder beside the model."""
    if model_dir.parent.name == "models":
        return model_dir.parent.parent / "eval" / "cache"
    return model_dir.parent / ".obliviate-eval-cache"


def reference_for(
    run_dir_or_retain_model_path: str | os.PathLike,
    world: World,
    forget: str = "forget10",
    config: EvalConfig = EvalConfig(),
    device: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    dtype: str | None = None,
    device_map: str | None = None,
) -> Reference:
    """Evaluate the retain model (or reuse its cached evaluation) and return it as a reference.
    ``dtype``/``device_map`` load it as the evaluated model is loaded (the dtype is in the key:
    bf16 and fp32 scores differ)."""
    from obliviate.models.loading import load_model_and_tokenizer

    model_dir = resolve_retain_model(run_dir_or_retain_model_path)
    fingerprint = model_dir_fingerprint(model_dir)
    if dtype not in (None, "auto", "float32", "fp32"):   # checkpoints here are float32
        fingerprint = f"{fingerprint}:{dtype}"
    key = eval_cache_key(fingerprint, world.fingerprint, forget, config)
    cache_file = Path(cache_dir) if cache_dir is not None else default_cache_dir(model_dir)
    cache_file = cache_file / f"retain-{key}.json"
    if cache_file.is_file():
        try:
            cached = read_json(cache_file, "cached reference")
            if isinstance(cached, dict) and cached.get("config", {}).get("cache_key") == key:
                return Reference.from_result(cached, world, forget, cache_file)
        except UserError:
            pass  # a corrupt cache file is recomputed, never trusted
    model, tokenizer = load_model_and_tokenizer(model_dir, device=device, dtype=dtype, device_map=device_map)
    result = evaluate(model, tokenizer, world, forget, reference=None, config=config,
                      model_path=model_dir, model_fingerprint=fingerprint)
    atomic_write_json(cache_file, result)
    return Reference.from_result(result, world, forget, cache_file)
