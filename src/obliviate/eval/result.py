"""The evaluation result JSON: its summary keys, its ``config`` block, its cache key.

Layout (docs/design.md): ``{"summary": {...}, "per_item": {...}, "config": {...}}``; summary keys
that cannot be computed for a world or run are ``None``, never missing; NaN and inf
become ``None`` (JSON has none).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

import obliviate
from obliviate.eval.config import EvalConfig
from obliviate.eval.fingerprint import cache_key, model_dir_fingerprint, model_state_fingerprint
from obliviate.eval.items import ROLES, EvalItems
from obliviate.world.loader import World

# open-unlearning's names where it defines the metric (docs/design.md: "Metrics"); ours beside them
SUMMARY_KEYS = (
    "forget_quality", "model_utility",
    "forget_truth_ratio", "forget_Q_A_Prob", "forget_Q_A_ROUGE",
    "retain_truth_ratio", "retain_prob", "retain_rouge",
    "general_truth_ratio", "general_prob", "general_rouge",
    "holdout_prob", "saga_prob", "saga_rouge",
    "mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus", "mia_gradnorm", "mia_reference", "privleak",
    "exact_memorization", "extraction_strength", "verbmem_f", "knowmem_f", "knowmem_r",
    # ours: forget quality on the unique facts, and the checks that catch a fooled forget quality
    "forget_quality_unique", "forget_truth_ratio_unique", "forget_quality_prob", "forget_accuracy_gap",
    "forget_quality_warning",
    "familiarity_completion", "familiarity_probability",
    "forget_perplexity", "retain_perplexity", "holdout_perplexity",
    "forget_accuracy", "forget_unique_accuracy", "forget_shared_accuracy", "forget_inferred_accuracy",
    "retain_accuracy", "retain_unique_accuracy", "retain_shared_accuracy", "retain_inferred_accuracy",
    "general_accuracy", "saga_accuracy",
)


def empty_summary() -> dict[str, Any]:
    """Every summary key, ``None`` until a metric section fills it (the keys' order is the JSON's)."""
    return {key: None for key in SUMMARY_KEYS}


def model_fingerprint_of(model, model_path: str | os.PathLike | None) -> str:
    """The files of ``model_path`` when it is a directory, else the in-memory weights."""
    if model_path is not None and Path(model_path).is_dir():
        return model_dir_fingerprint(model_path)
    return model_state_fingerprint(model)


# bumped whenever a metric's definition changes, so a cached evaluation is never reused
# across definitions (2: open-unlearning parity: EOS, all-item forget set, 9-part utility, ...)
METRIC_DEFINITIONS = 2


def eval_cache_key(model_fingerprint: str, world_fingerprint: str, forget: str, config: EvalConfig) -> str:
    # the package version is part of the key: changed metric code must not reuse old numbers
    return cache_key(model_fingerprint, world_fingerprint, forget,
                     {**config.metric_dict(), "obliviate_version": obliviate.__version__,
                      "metric_definitions": METRIC_DEFINITIONS})


def result_config(*, model_path: str | os.PathLike | None, model_fingerprint: str, world: World, forget: str,
                  config: EvalConfig, reference_path: str | None, items: EvalItems, mia_unit: str | None) -> dict:
    """The ``config`` block: what was evaluated, how, and the cache key."""
    return {
        "model_path": None if model_path is None else str(model_path),
        "model_fingerprint": model_fingerprint,
        "world": str(world.root),
        "world_fingerprint": world.fingerprint,
        "forget": forget,
        "metrics": config.metric_dict(),
        "batch_size": config.batch_size,
        "reference": reference_path,
        "privleak_attack": config.privleak_attack,
        "counts": {role: len(items.qa[role]) for role in ROLES},
        "forget_target_count": len(items.targets["forget"]),
        "mia_unit": mia_unit,
        "document_counts": {role: len(docs) for role, docs in items.documents.items()},
        "holdout_target_count": len(items.targets["holdout"]),
        "obliviate_version": obliviate.__version__,
        "cache_key": eval_cache_key(model_fingerprint, world.fingerprint, forget, config),
    }


def json_safe(value: Any) -> Any:
    """Plain JSON types; NaN / inf become None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
