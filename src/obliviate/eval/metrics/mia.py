"""Membership inference: per-item attack scores and forget-vs-holdout AUCs, PrivLeak.

The six attacks of open-unlearning (src/evals/metrics/mia/): LOSS, ZLib, Min-K%,
Min-K%++, GradNorm and the reference-based attack (the target's loss minus a reference
model's: ours is the retain model, as open-unlearning's ``reference_model_path`` is).
Every score here is oriented so that HIGHER means "more likely a training member" (the
negative of open-unlearning's scores, which are losses); the AUC of forget (members)
against holdout (non-members) is the same number as theirs: 1 when the forget data is
much more likely than the holdout data, 0.5 when the model cannot tell them apart.
"""

from __future__ import annotations

import math
import zlib
from typing import Mapping, Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

# scores every evaluation computes from the scoring pass
SCORING_ATTACKS = ("loss", "zlib", "min_k", "min_k_plus_plus")
# the gradient-norm pass (optional) and the reference-based attack (needs a retain reference)
ATTACKS = SCORING_ATTACKS + ("gradnorm", "reference")


def zlib_length(text: str) -> int:
    """Bytes of the zlib-compressed UTF-8 text: the reference-free 'entropy' of Carlini et al."""
    return len(zlib.compress(text.encode("utf-8")))


def lowest_k_mean(values: Sequence[float], k: float) -> float:
    """Mean of the ``k`` fraction of smallest values (at least one value)."""
    values = np.sort(np.asarray(values, dtype=np.float64))
    if values.size == 0:
        raise ValueError("no token scores")
    count = max(1, int(values.size * k))
    return float(values[:count].mean())


def loss_score(avg_nll: float) -> float:
    return -float(avg_nll)


def zlib_score(avg_nll: float, text: str) -> float:
    """``-(avg NLL / zlib length of the text)``."""
    return -float(avg_nll) / max(zlib_length(text), 1)


def mink_score(token_logprobs: Sequence[float], k: float = 0.4) -> float:
    """Min-K%: mean log-prob of the k fraction of least likely tokens."""
    return lowest_k_mean(token_logprobs, k)


def minkpp_score(token_minkpp: Sequence[float], k: float = 0.4) -> float:
    """Min-K%++: the same selection on ``(log p(x_t) - mu_t) / sigma_t`` per token, where
    mu_t and sigma_t are the mean and std of log p(z) under z ~ p(.|x_<t) (Zhang et al. 2024)."""
    return lowest_k_mean(token_minkpp, k)


def gradnorm_score(gradient_norm: float) -> float:
    """GradNorm (arXiv 2402.17012): members sit at flatter loss, so a smaller gradient norm."""
    return -float(gradient_norm)


def reference_score(avg_nll: float, reference_avg_nll: float) -> float:
    """Reference-based: how much lower the target's loss is than the reference model's."""
    return float(reference_avg_nll) - float(avg_nll)


def attack_scores(avg_nll: float, text: str, token_logprobs: Sequence[float],
                  token_minkpp: Sequence[float], k: float = 0.4) -> dict[str, float]:
    """The scoring-pass attacks of one item. ``avg_nll`` includes the EOS prediction (LOSS,
    ZLib); the token arrays do not (Min-K, Min-K++), as in open-unlearning."""
    return {
        "loss": loss_score(avg_nll),
        "zlib": zlib_score(avg_nll, text),
        "min_k": mink_score(token_logprobs, k),
        "min_k_plus_plus": minkpp_score(token_minkpp, k),
    }


def auc(member_scores: Sequence[float], nonmember_scores: Sequence[float]) -> float:
    """ROC AUC of separating members (label 1) from non-members (label 0)."""
    members = np.asarray(member_scores, dtype=np.float64)
    nonmembers = np.asarray(nonmember_scores, dtype=np.float64)
    if members.size == 0 or nonmembers.size == 0:
        raise ValueError("AUC needs at least one member and one non-member")
    labels = np.concatenate([np.ones(members.size), np.zeros(nonmembers.size)])
    return float(roc_auc_score(labels, np.concatenate([members, nonmembers])))


def attack_aucs(member: Sequence[Mapping[str, float]], nonmember: Sequence[Mapping[str, float]]
                ) -> dict[str, float | None]:
    """AUC of every attack of :data:`ATTACKS` that scored every item; None for the others."""
    out: dict[str, float | None] = {}
    for name in ATTACKS:
        scored = all(name in m for m in member) and all(name in n for n in nonmember)
        out[name] = auc([m[name] for m in member], [n[name] for n in nonmember]) if scored else None
    return out


def privleak(auc_evaluated: float, auc_retain: float) -> float:
    """MUSE's PrivLeak, as open-unlearning computes it (privacy.py:privleak):
    ``((1 - AUC) - (1 - AUC_retain)) / (1 - AUC_retain) * 100``.

    0: the evaluated model leaks membership as much as the retrained one; strongly
    negative (down to -100 at AUC 1): under-unlearned, the forget data still looks seen;
    positive: over-unlearned (the forget data looks *less* seen than never-seen data).
    """
    ref = 1.0 - float(auc_retain)
    if ref <= 0.0:  # the retained model itself separates perfectly: no scale to compare against
        return math.nan
    return ((1.0 - float(auc_evaluated)) - ref) / ref * 100.0
