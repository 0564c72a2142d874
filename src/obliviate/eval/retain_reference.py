"""The retain model's evaluation as the reference of a later one: forget quality and PrivLeak.

A :class:`RetainReference` holds what an evaluation needs from the retain model's result
(its per-item forget truth ratios and MIA AUCs), checked to be for the same world and
forget split. Where it comes from (a file, the run's cache) is the workflows' business
(:mod:`obliviate.workflows.evaluate`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from obliviate.errors import UserError
from obliviate.eval.metrics import mia, truth_ratio
from obliviate.io import read_json
from obliviate.world.loader import World


@dataclass
class RetainReference:
    """What a later run needs from the retain model's evaluation."""

    forget: str
    world_fingerprint: str
    forget_truth_ratio: dict[str, float]
    mia_auc: dict[str, float | None]
    path: str | None = None

    @classmethod
    def from_result(cls, result: Any, world: World, forget: str,
                    path: str | os.PathLike | None = None) -> "RetainReference":
        where = f"reference {path}" if path else "reference"
        if not isinstance(result, dict) or not all(isinstance(result.get(k), dict)
                                                   for k in ("summary", "per_item", "config")):
            raise UserError(f"{where} is not an evaluation JSON (needs summary, per_item and config)")
        config = result["config"]
        if config.get("world_fingerprint") != world.fingerprint:
            raise UserError(f"{where} was computed on another world (fingerprint {config.get('world_fingerprint')}, "
                            f"this world is {world.fingerprint})")
        if config.get("forget") != forget:
            raise UserError(f"{where} is for forget split {config.get('forget')!r}, not {forget!r}")
        trs = result["per_item"].get("forget_truth_ratio")
        # empty only where the split has no QA item to score (a text world): no forget quality then
        if not isinstance(trs, dict) or (not trs and config.get("forget_target_count") != 0):
            raise UserError(f"{where} holds no per-item forget truth ratios")
        summary = result["summary"]
        return cls(
            forget=forget,
            world_fingerprint=world.fingerprint,
            forget_truth_ratio={str(k): (math.nan if v is None else float(v)) for k, v in trs.items()},
            mia_auc={name: summary.get(f"mia_auc_{name}") for name in mia.ATTACKS},
            path=None if path is None else str(path),
        )


def load_reference(path: str | os.PathLike, world: World, forget: str) -> RetainReference:
    """Read a reference (retain model) evaluation JSON; UserError if it does not fit."""
    return RetainReference.from_result(read_json(path, "reference JSON"), world, forget, path)


def as_retain_reference(reference: RetainReference | dict | None, world: World, forget: str
                        ) -> RetainReference | None:
    """``reference`` as a :class:`RetainReference` (a dict is an evaluation result); UserError
    if it is for another world or forget split."""
    if isinstance(reference, dict):
        return RetainReference.from_result(reference, world, forget)
    if reference is not None and (reference.world_fingerprint != world.fingerprint or reference.forget != forget):
        raise UserError(f"reference {reference.path or '(in memory)'} is for another world or forget split")
    return reference


def compare_with_reference(reference: RetainReference, forget_ids: list[str], forget_trs: np.ndarray,
                           own_auc: float | None, privleak_attack: str) -> tuple[dict[str, float], dict[str, Any]]:
    """Forget quality on the SAME forget items and PrivLeak of ``own_auc`` (the evaluated
    model's ``privleak_attack`` AUC): the summary entries, and the reference's per-item entry."""
    missing = [i for i in forget_ids if i not in reference.forget_truth_ratio]
    if missing:
        raise UserError(f"reference {reference.path or ''} lacks truth ratios for {len(missing)} forget item(s), "
                        f"e.g. {missing[0]!r}: it was computed on other QA items")
    ref_trs = [reference.forget_truth_ratio[i] for i in forget_ids]
    summary: dict[str, float] = {}
    if forget_ids:
        summary["forget_quality"] = truth_ratio.forget_quality(forget_trs, ref_trs)
    ref_auc = reference.mia_auc.get(privleak_attack)
    if ref_auc is not None and own_auc is not None and ref_auc > 0:
        summary["privleak"] = mia.privleak(own_auc, ref_auc)
    per_item = {"path": reference.path, "forget_truth_ratio": dict(zip(forget_ids, ref_trs)),
                "mia_auc": reference.mia_auc}
    return summary, per_item
