"""Membership inference: per-item attack scores and forget-vs-holdout AUCs, PrivLeak.

Every score is oriented so that HIGHER means "more likely a training member"; an AUC of
forget (members, label 1) against holdout (non-members, label 0) above 0.5 says the
model still treats the forget data as seen.
"""

from __future__ import annotations

import zlib
from typing import Mapping, Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

ATTACKS = ("loss", "zlib", "mink", "minkpp")


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


def attack_scores(avg_nll: float, text: str, token_logprobs: Sequence[float],
                  token_minkpp: Sequence[float], k: float = 0.4) -> dict[str, float]:
    return {
        "loss": loss_score(avg_nll),
        "zlib": zlib_score(avg_nll, text),
        "mink": mink_score(token_logprobs, k),
        "minkpp": minkpp_score(token_minkpp, k),
    }


def auc(member_scores: Sequence[float], nonmember_scores: Sequence[float]) -> float:
    """ROC AUC of separating members (label 1) from non-members (label 0)."""
    members = np.asarray(member_scores, dtype=np.float64)
    nonmembers = np.asarray(nonmember_scores, dtype=np.float64)
    if members.size == 0 or nonmembers.size == 0:
        raise ValueError("AUC needs at least one member and one non-member")
    labels = np.concatenate([np.ones(members.size), np.zeros(nonmembers.size)])
    return float(roc_auc_score(labels, np.concatenate([members, nonmembers])))


def attack_aucs(member: Sequence[Mapping[str, float]], nonmember: Sequence[Mapping[str, float]]) -> dict[str, float]:
    return {name: auc([m[name] for m in member], [n[name] for n in nonmember]) for name in ATTACKS}


def privleak(auc_unlearned: float, auc_retain: float) -> float:
    """``(AUC_unlearned - AUC_retain) / AUC_retain * 100``: >0 under-unlearned, <0 over-unlearned."""
    return (float(auc_unlearned) - float(auc_retain)) / float(auc_retain) * 100.0
