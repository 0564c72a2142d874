"""Truth Ratio and Forget Quality (docs/design.md, fixed definitions)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import ks_2samp


def truth_ratio(avg_nll_paraphrased: Sequence[float], avg_nll_perturbed: Sequence[Sequence[float]]) -> np.ndarray:
    """Per item ``exp(-mean_k avg_nll_pert_k) / exp(-avg_nll_para)``.

    ``avg_nll_perturbed`` is one row of per-answer average NLLs per item (rows may differ
    in length). Computed in log space: ``exp(avg_nll_para - mean(avg_nll_pert))``.
    """
    para = np.asarray(avg_nll_paraphrased, dtype=np.float64)
    pert = np.array([np.mean(np.asarray(row, dtype=np.float64)) for row in avg_nll_perturbed], dtype=np.float64)
    if para.shape != pert.shape:
        raise ValueError(f"{para.shape[0]} paraphrased scores but {pert.shape[0]} perturbed rows")
    return np.exp(para - pert)


def forget_truth_ratio(tr: Sequence[float]) -> float:
    """Forget sets: ``mean(min(TR, 1/TR))`` (1 = the model cannot tell true from false)."""
    tr = np.asarray(tr, dtype=np.float64)
    return float(np.mean(np.minimum(tr, 1.0 / tr)))


def retain_truth_ratio(tr: Sequence[float]) -> float:
    """Retain / general sets: ``mean(max(0, 1 - TR))`` (1 = true answers far preferred)."""
    tr = np.asarray(tr, dtype=np.float64)
    return float(np.mean(np.maximum(0.0, 1.0 - tr)))


def forget_quality(tr_evaluated: Sequence[float], tr_retain: Sequence[float]) -> float:
    """KS two-sample p-value between the evaluated and the retain model's per-item TRs."""
    return float(ks_2samp(np.asarray(tr_evaluated, dtype=np.float64), np.asarray(tr_retain, dtype=np.float64)).pvalue)
