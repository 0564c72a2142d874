"""The retain model's evaluation as the reference of a later one: forget quality, PrivLeak,
the reference-based MIA, and the checks that catch a forget quality that was fooled.

A :class:`RetainReference` holds what an evaluation needs from the retain model's result
(its per-item forget truth ratios and answer probabilities, its forget accuracy, its MIA
AUCs and per-item losses), checked to be for the same world and forget split. Where it
comes from (a file, the run's cache) is the workflows' business
(:mod:`obliviate.workflows.evaluate`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import ks_2samp

from obliviate.errors import UserError
from obliviate.eval.metrics import mia, truth_ratio
from obliviate.io import read_json
from obliviate.world.loader import World

# a KS p-value under this says "distinguishable from the retrained model"
SIGNIFICANCE = 0.05
# an exact-answer accuracy above the retrained model's by more than this is knowledge kept
ACCURACY_GAP_TOLERANCE = 0.10


@dataclass
class RetainReference:
    """What a later run needs from the retain model's evaluation."""

    forget: str
    world_fingerprint: str
    forget_truth_ratio: dict[str, float]
    mia_auc: dict[str, float | None]
    path: str | None = None
    forget_prob: dict[str, float] = field(default_factory=dict)   # per forget item: answer probability
    forget_accuracy: float | None = None
    mia_loss: dict[str, dict[str, float]] = field(default_factory=dict)  # forget/holdout -> unit -> LOSS score

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
        if not isinstance(trs, dict) or (not trs and config.get("counts", {}).get("forget", 0) != 0):
            raise UserError(f"{where} holds no per-item forget truth ratios")
        summary = result["summary"]
        per_item = result["per_item"]
        forget_rows = (per_item.get("qa") or {}).get("forget") or {}
        mia_rows = per_item.get("mia") or {}
        return cls(
            forget=forget,
            world_fingerprint=world.fingerprint,
            forget_truth_ratio={str(k): (math.nan if v is None else float(v)) for k, v in trs.items()},
            mia_auc={name: summary.get(f"mia_{name}") for name in mia.ATTACKS},
            path=None if path is None else str(path),
            forget_prob={str(k): float(row["prob"]) for k, row in forget_rows.items() if row.get("prob") is not None},
            forget_accuracy=summary.get("forget_accuracy"),
            mia_loss={role: {str(k): float(row["loss"]) for k, row in (mia_rows.get(role) or {}).items()}
                      for role in ("forget", "holdout")},
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


def _ks_pvalue(ours: list[float], theirs: list[float]) -> float | None:
    return float(ks_2samp(np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)).pvalue) \
        if ours and theirs else None


def forget_quality_warning(fq: float | None, fq_prob: float | None, accuracy_gap: float | None) -> str | None:
    """A warning when the truth-ratio forget quality and the two independent checks disagree.

    The truth ratio only sees memorisation when the perturbed answers share the
    paraphrase's wording; on user data they may not, and FQ then says "forgotten" while the
    model still answers. The KS test on answer probability and the exact-answer accuracy
    gap do not depend on that wording.
    """
    if fq is None:
        return None
    kept = []
    if fq_prob is not None and fq_prob < SIGNIFICANCE:
        kept.append(f"answer probabilities differ from the retrained model's (KS p={fq_prob:.2g})")
    if accuracy_gap is not None and accuracy_gap > ACCURACY_GAP_TOLERANCE:
        kept.append(f"forget accuracy is {accuracy_gap:+.2f} above the retrained model's")
    if fq >= SIGNIFICANCE and kept:
        return f"forget_quality {fq:.2g} says forgotten, but " + " and ".join(kept)
    if fq < SIGNIFICANCE and not kept and fq_prob is not None and accuracy_gap is not None:
        return (f"forget_quality {fq:.2g} says not forgotten, but answer probabilities (KS p={fq_prob:.2g}) "
                f"and forget accuracy (gap {accuracy_gap:+.2f}) match the retrained model's")
    return None


def reference_attack_rows(reference: RetainReference, mia_rows: dict[str, dict[str, dict[str, float]]]
                          ) -> bool:
    """Add the reference-based MIA score to each MIA row the reference scored too (in place);
    True when every row got one. LOSS scores are ``-avg NLL``, so the reference score
    ``ref_nll - own_nll`` is ``own_loss_score - ref_loss_score``."""
    complete = bool(mia_rows.get("forget")) and bool(mia_rows.get("holdout"))
    for role, rows in mia_rows.items():
        for unit_id, row in rows.items():
            ref = reference.mia_loss.get(role, {}).get(unit_id)
            if ref is None:
                complete = False
                continue
            row["reference"] = mia.reference_score(-row["loss"], -ref)
    return complete


def compare_with_reference(reference: RetainReference, forget_ids: list[str], forget_trs: np.ndarray,
                           target_ids: list[str], summary: dict[str, Any], mia_rows: dict[str, dict[str, dict[str, float]]],
                           per_item_forget: dict[str, dict[str, Any]], privleak_attack: str
                           ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The summary entries that need the retain model, and the reference's per-item entry.

    forget_quality: KS test of the truth ratios on ALL forget items (open-unlearning's
    privacy.py:ks_test); forget_quality_unique on the ``forget_kinds`` items;
    forget_quality_prob: KS test on per-item answer probability; forget_accuracy_gap;
    forget_quality_warning; mia_reference; privleak of ``privleak_attack``'s AUC.
    """
    missing = [i for i in forget_ids if i not in reference.forget_truth_ratio]
    if missing:
        raise UserError(f"reference {reference.path or ''} lacks truth ratios for {len(missing)} forget item(s), "
                        f"e.g. {missing[0]!r}: it was computed on other QA items or by an older obliviate "
                        f"(evaluate the retain model again)")
    ref_trs = [reference.forget_truth_ratio[i] for i in forget_ids]
    tr_by_id = dict(zip(forget_ids, forget_trs.tolist()))
    # only items both models have a truth ratio for (none without perturbed answers: MUSE's QA)
    with_tr = [i for i in forget_ids if math.isfinite(tr_by_id[i]) and math.isfinite(reference.forget_truth_ratio[i])]
    has_tr = set(with_tr)
    targets_with_tr = [i for i in target_ids if i in has_tr]
    out: dict[str, Any] = {}
    if with_tr:
        out["forget_quality"] = truth_ratio.forget_quality([tr_by_id[i] for i in with_tr],
                                                           [reference.forget_truth_ratio[i] for i in with_tr])
    if targets_with_tr:
        out["forget_quality_unique"] = truth_ratio.forget_quality(
            [tr_by_id[i] for i in targets_with_tr], [reference.forget_truth_ratio[i] for i in targets_with_tr])
    with_prob = [i for i in forget_ids if i in reference.forget_prob and i in per_item_forget]
    if with_prob:
        out["forget_quality_prob"] = _ks_pvalue([per_item_forget[i]["prob"] for i in with_prob],
                                                [reference.forget_prob[i] for i in with_prob])
    if summary.get("forget_accuracy") is not None and reference.forget_accuracy is not None:
        out["forget_accuracy_gap"] = float(summary["forget_accuracy"]) - float(reference.forget_accuracy)
    out["forget_quality_warning"] = forget_quality_warning(out.get("forget_quality"), out.get("forget_quality_prob"),
                                                           out.get("forget_accuracy_gap"))
    if reference_attack_rows(reference, mia_rows):
        out["mia_reference"] = mia.auc([r["reference"] for r in mia_rows["forget"].values()],
                                       [r["reference"] for r in mia_rows["holdout"].values()])
    own_auc = out.get("mia_reference") if privleak_attack == "reference" else summary.get(f"mia_{privleak_attack}")
    ref_auc = reference.mia_auc.get(privleak_attack)
    if ref_auc is not None and own_auc is not None:
        out["privleak"] = mia.privleak(own_auc, ref_auc)
    per_item = {"path": reference.path, "forget_truth_ratio": dict(zip(forget_ids, ref_trs)),
                "mia_auc": reference.mia_auc}
    return out, per_item
