"""Model Utility: harmonic mean of retain and general prob, ROUGE and truth ratio."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import hmean


def harmonic_mean(values: Sequence[float]) -> float:
    """Harmonic mean; 0 if any value is 0 (one lost ability sinks utility)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("harmonic mean of no values")
    if np.any(values < 0) or np.any(~np.isfinite(values)):
        raise ValueError(f"harmonic mean needs finite non-negative values, got {values.tolist()}")
    if np.any(values == 0):
        return 0.0
    return float(hmean(values))


def normalised_prob(avg_nll_correct: Sequence[float], avg_nll_perturbed: Sequence[Sequence[float]]) -> np.ndarray:
    """Per item ``P_correct / (P_correct + sum_k P_perturbed_k)`` with ``P = exp(-avg_nll)``."""
    correct = np.asarray(avg_nll_correct, dtype=np.float64)
    out = np.empty_like(correct)
    for index, (c, row) in enumerate(zip(correct, avg_nll_perturbed)):
        # shift by the smallest NLL so exp() cannot underflow to 0/0
        nll = np.concatenate([[c], np.asarray(row, dtype=np.float64)])
        weights = np.exp(-(nll - nll.min()))
        out[index] = weights[0] / weights.sum()
    return out
