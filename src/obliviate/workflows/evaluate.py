"""Evaluate a saved model and write its JSON: the one evaluate-with-cache path.

Every caller (``obliviate eval``, ``obliviate unlearn``, the retain model's reference, the
leaderboard) goes through ``evaluate_model_dir``, so there is one cache rule: a JSON
already at the output path is reused only when its ``config.cache_key`` matches, a hash
of (model files by content plus the load dtype, world fingerprint, forget split, metric
config, package version), and it was graded against the same reference. A retrained
model, another world, other settings or another reference give another key, so a stale
file is never trusted; a corrupt one is recomputed.

The retain model's evaluation is itself cached under ``RUN/eval/cache/retain-<key>.json``
and read back as the reference (forget quality, PrivLeak) of every other evaluation.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

from obliviate.errors import UserError
from obliviate.eval.evaluator import EvalConfig, RetainReference, eval_cache_key, evaluate, load_reference
from obliviate.eval.fingerprint import model_dir_fingerprint
from obliviate.io import atomic_write_json, read_json
from obliviate.models.loading import (
    chat_options_for, chat_template_for, check_device, check_device_map, load_model_and_tokenizer, read_run_config,
    weights_dtype_name,
)
from obliviate.world.loader import World

__all__ = ["RetainReference", "default_cache_dir", "evaluate_model_dir", "load_reference", "reference_for",
           "resolve_retain_model"]

log = logging.getLogger(__name__)

FULL_PRECISION = (None, "auto", "float32", "fp32")   # checkpoints written here are float32


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


def default_eval_path(model_dir: Path) -> Path:
    """``RUN/eval/<id>.json`` for ``RUN/models/<id>`` (the run layout), else inside the model dir."""
    model_dir = Path(model_dir)
    if model_dir.parent.name == "models":
        return model_dir.parent.parent / "eval" / f"{model_dir.name}.json"
    return model_dir / "eval.json"


def model_fingerprint_for(model_dir: str | os.PathLike, dtype: str | None = None) -> str:
    """The model's content hash, plus the dtype it is loaded in when that is not float32
    (bf16 and fp32 scores differ)."""
    fingerprint = model_dir_fingerprint(model_dir)
    return fingerprint if dtype in FULL_PRECISION else f"{fingerprint}:{dtype}"


def _cached(out_json: Path, key: str, reference_id: str | None) -> dict | None:
    if not out_json.is_file():
        return None
    try:
        cached = read_json(out_json, "cached evaluation")
    except UserError:
        return None   # a corrupt file is recomputed, never trusted
    config = cached.get("config", {}) if isinstance(cached, dict) else {}
    if config.get("cache_key") == key and config.get("reference_id") == reference_id:
        return cached
    return None


def with_chat_template(config: EvalConfig, model_dir: Path, tokenizer=None) -> EvalConfig:
    """``config`` with its QA format decided for the model in ``model_dir`` (automatic: as
    the model was trained); the cache key then holds the choice actually made."""
    chat = config.chat_template if config.chat_template is not None else chat_template_for(model_dir, None, tokenizer)
    return dataclasses.replace(config, chat_template=chat, chat_options=chat_options_for(model_dir, config.chat_options))


def evaluate_model_dir(
    model_dir: str | os.PathLike,
    world: World,
    forget: str,
    out_json: str | os.PathLike,
    reference: RetainReference | None = None,
    config: EvalConfig = EvalConfig(),
    device: str | None = None,
    dtype: str | None = None,
    device_map: str | None = None,
    loaded: tuple | None = None,
    reuse: bool = True,
) -> dict:
    """Evaluate the model saved in ``model_dir`` on ``world``/``forget`` (graded against
    ``reference`` when given) and write the result to ``out_json`` atomically.

    With ``reuse``, an evaluation already at ``out_json`` with the same cache key and
    reference is returned instead (the one cache rule). ``loaded`` is the
    ``(model, tokenizer)`` already in memory for ``model_dir`` (saves a reload).
    """
    model_dir, out_json = Path(model_dir), Path(out_json)
    # a bad placement is the user's one error, before the tokenizer is read for the chat format
    check_device(device)
    check_device_map(device_map)
    config = with_chat_template(config, model_dir, None if loaded is None else loaded[1])
    fingerprint = model_fingerprint_for(model_dir, dtype)
    key = eval_cache_key(fingerprint, world.fingerprint, forget, config)
    reference_id = None if reference is None else reference.path
    if reuse:
        cached = _cached(out_json, key, reference_id)
        if cached is not None:
            log.info("reusing the evaluation in %s", out_json)
            return cached
    if loaded is None:
        loaded = load_model_and_tokenizer(model_dir, device=device, dtype=dtype, device_map=device_map)
    model, tokenizer = loaded
    result = evaluate(model, tokenizer, world, forget, reference=reference, config=config, model_path=model_dir,
                      model_fingerprint=fingerprint)
    result["config"]["reference_id"] = reference_id
    result["config"]["dtype"] = weights_dtype_name(model)
    result["config"]["device_map"] = device_map
    atomic_write_json(out_json, result)
    return result


def reference_for(
    run_dir_or_retain_model_path: str | os.PathLike,
    world: World,
    forget: str = "forget10",
    config: EvalConfig = EvalConfig(),
    device: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    dtype: str | None = None,
    device_map: str | None = None,
) -> RetainReference:
    """Evaluate the retain model (or reuse its cached evaluation) and return it as a reference.
    ``dtype``/``device_map`` load it as the evaluated model is loaded."""
    model_dir = resolve_retain_model(run_dir_or_retain_model_path)
    config = with_chat_template(config, model_dir)
    key = eval_cache_key(model_fingerprint_for(model_dir, dtype), world.fingerprint, forget, config)
    cache_file = (Path(cache_dir) if cache_dir is not None else default_cache_dir(model_dir)) / f"retain-{key}.json"
    result = evaluate_model_dir(model_dir, world, forget, cache_file, reference=None, config=config, device=device,
                                dtype=dtype, device_map=device_map)
    return RetainReference.from_result(result, world, forget, cache_file)


def sibling_retain_model(model: Path, forget: str, world: World | None = None) -> Path | None:
    """The run's retain model for ``forget`` next to a model dir (``../retain-<forget>``, the
    ``RunDir`` name for splits other than forget10, else ``../retain``), if it is the retain
    model of the same run.

    Its recorded training inputs (``obliviate_config.json``) must match when present:
    the same forget split, and, given ``world``, the same world and exactly the world's
    training sources minus ``forget``. A retain model for another split or world would be
    a wrong reference, so it is skipped (with a warning) rather than used.
    """
    candidates = [Path(model).parent / name for name in (f"retain-{forget}", "retain")]
    candidate = next((c for c in candidates if (c / "config.json").is_file()), None)
    if candidate is None:
        return None
    run_config = read_run_config(candidate)
    inputs = run_config.get("inputs") if isinstance(run_config.get("inputs"), dict) else {}
    reason = None
    if run_config.get("forget") not in (None, forget):
        reason = f"it was trained for forget split {run_config.get('forget')!r}"
    elif world is not None and inputs.get("world") not in (None, world.fingerprint):
        reason = "it was trained on another world"
    elif world is not None and inputs.get("sources") is not None and \
            sorted(int(s) for s in inputs["sources"]) != sorted(world.training_sources(forget)):
        reason = f"its training sources are not this world's sources minus {forget!r}"
    if reason:
        log.warning("not using %s as the reference: %s", candidate, reason)
        return None
    return candidate
