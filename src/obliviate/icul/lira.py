"""Likelihood-ratio membership attack (LiRA, Carlini et al. 2022) in its unlearning form
(LiRA-Forget, Pawelczyk et al.).

Score: the logit-stability score ``phi = log p(y|x) - log sum_{y' != y} p(y'|x)`` of the
true label. It is invariant to renormalising ``p`` over the label set, so summed label
log-probs straight from a causal LM can be passed in.

Game: ``K`` models, each trained on a random half of a population of points
(``keep[k, i]``). For a point ``i`` and a target model ``t``, the other models give two
score samples: *in* models (trained with ``i``, then the unlearning procedure applied to
``i``) and *out* models (trained without ``i``: the retrained gold standard). Each sample
is fitted by a Gaussian and the test statistic is the log likelihood ratio of the target's
observation. With no unlearning this is plain LiRA; when unlearning is perfect the *in*
and *out* distributions coincide and the AUC over all (target, point) pairs is 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp
from scipy.stats import norm, rankdata
from sklearn.metrics import roc_auc_score, roc_curve

from obliviate.errors import UserError

FPR_LEVELS = (0.1, 0.01, 0.001)


def logit_stability(label_logprobs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``log p(y|x) - logsumexp_{y' != y} log p(y'|x)`` per row of ``label_logprobs`` [N, L]."""
    label_logprobs = np.asarray(label_logprobs, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    if label_logprobs.ndim != 2 or label_logprobs.shape[1] < 2:
        raise UserError(f"need label log-probs of shape [N, L>=2], got {label_logprobs.shape}")
    rows = np.arange(len(targets))
    correct = label_logprobs[rows, targets]
    others = label_logprobs.copy()
    others[rows, targets] = -np.inf
    return correct - logsumexp(others, axis=1)


def _pooled_std(samples: np.ndarray, present: np.ndarray, means: np.ndarray) -> float:
    """Within-point standard deviation pooled over all points (LiRA's fixed variance)."""
    residuals = (samples - means[None, :])[present]
    dof = max(int(present.sum()) - int(present.any(axis=0).sum()), 1)
    return float(max(np.sqrt((residuals ** 2).sum() / dof), 1e-6))


@dataclass
class LiraGame:
    """Per (target model, point): the test statistic and whether the point was a member."""

    statistic: np.ndarray   # [K, N], NaN where a point lacks in or out shadows
    member: np.ndarray      # [K, N] bool


def lira_forget(unlearned: np.ndarray, plain: np.ndarray, keep: np.ndarray, fix_variance: bool = True) -> LiraGame:
    """Leave-one-out LiRA-Forget over ``K`` models and ``N`` points.

    ``unlearned[k, i]``: score of point ``i`` on model ``k`` after unlearning ``i`` (used
    where ``keep[k, i]``); ``plain[k, i]``: its score without unlearning (used where
    ``~keep[k, i]``). Passing ``unlearned = plain`` gives plain LiRA. ``fix_variance``
    pools the variance over points (robust with few shadow models); otherwise each
    point's own in/out variance is used.
    """
    unlearned = np.asarray(unlearned, dtype=np.float64)
    plain = np.asarray(plain, dtype=np.float64)
    keep = np.asarray(keep, dtype=bool)
    if not (unlearned.shape == plain.shape == keep.shape) or keep.ndim != 2:
        raise UserError(f"unlearned, plain and keep must share one [K, N] shape, got "
                        f"{unlearned.shape}, {plain.shape}, {keep.shape}")
    n_models, n_points = keep.shape
    if n_models < 3:
        raise UserError(f"LiRA needs at least 3 models (target + in and out shadows), got {n_models}")
    observed = np.where(keep, unlearned, plain)
    statistic = np.full(keep.shape, np.nan)
    for target in range(n_models):
        shadows = np.arange(n_models) != target
        in_present, out_present = keep[shadows], ~keep[shadows]
        in_samples, out_samples = unlearned[shadows], plain[shadows]
        in_count, out_count = in_present.sum(0), out_present.sum(0)
        valid = (in_count > 0) & (out_count > 0)
        mu_in = np.where(in_present, in_samples, 0).sum(0) / np.maximum(in_count, 1)
        mu_out = np.where(out_present, out_samples, 0).sum(0) / np.maximum(out_count, 1)
        if fix_variance:
            sd_in = np.full(n_points, _pooled_std(in_samples, in_present, mu_in))
            sd_out = np.full(n_points, _pooled_std(out_samples, out_present, mu_out))
        else:
            sd_in = np.sqrt(np.where(in_present, (in_samples - mu_in) ** 2, 0).sum(0) / np.maximum(in_count, 1))
            sd_out = np.sqrt(np.where(out_present, (out_samples - mu_out) ** 2, 0).sum(0) / np.maximum(out_count, 1))
            sd_in, sd_out = np.maximum(sd_in, 1e-6), np.maximum(sd_out, 1e-6)
        value = norm.logpdf(observed[target], mu_in, sd_in) - norm.logpdf(observed[target], mu_out, sd_out)
        statistic[target] = np.where(valid, value, np.nan)
    return LiraGame(statistic=statistic, member=keep.copy())


@dataclass
class AttackSummary:
    auc: float
    tpr_at_fpr: dict[float, float]
    n_members: int
    n_nonmembers: int

    def as_dict(self) -> dict:
        out = {"auc": self.auc}
        out.update({f"tpr_at_fpr_{level:g}": value for level, value in self.tpr_at_fpr.items()})
        out.update({"n_members": self.n_members, "n_nonmembers": self.n_nonmembers})
        return out


def tpr_at_fpr(member: np.ndarray, statistic: np.ndarray, levels=FPR_LEVELS) -> dict[float, float]:
    """Highest true-positive rate among thresholds whose false-positive rate is <= each level."""
    fpr, tpr, _ = roc_curve(member, statistic)
    return {level: float(tpr[fpr <= level].max()) if (fpr <= level).any() else 0.0 for level in levels}


def summarize(member: np.ndarray, statistic: np.ndarray, levels=FPR_LEVELS) -> AttackSummary:
    """AUC and TPR at fixed FPRs of a membership statistic (higher = member); NaNs dropped."""
    member = np.asarray(member, dtype=bool).ravel()
    statistic = np.asarray(statistic, dtype=np.float64).ravel()
    valid = ~np.isnan(statistic)
    member, statistic = member[valid], statistic[valid]
    if member.all() or not member.any():
        raise UserError("membership attack needs both members and non-members with scores")
    return AttackSummary(auc=float(roc_auc_score(member, statistic)), tpr_at_fpr=tpr_at_fpr(member, statistic, levels),
                         n_members=int(member.sum()), n_nonmembers=int((~member).sum()))


def bootstrap_aucs(member: np.ndarray, statistics: dict[str, np.ndarray], n_resamples: int = 1000,
                   seed: int = 0) -> dict[str, np.ndarray]:
    """AUC of each ``[K, N]`` statistic on ``n_resamples`` bootstrap resamples of the points.

    The points (columns) are the resampling unit, all their (target model, point) pairs
    together: pairs of one point share its shadow fits, so resampling pairs one by one
    would understate the spread. Every statistic sees the same resamples, so differences
    between them (a method minus no unlearning) are paired. NaN pairs are dropped."""
    member = np.asarray(member, dtype=bool)
    if member.ndim != 2 or any(np.shape(v) != member.shape for v in statistics.values()):
        raise UserError(f"bootstrap needs [K, N] member and statistics of one shape, got {member.shape}")
    if n_resamples < 1:
        raise UserError(f"n_resamples must be >= 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    n_points = member.shape[1]
    samples = {name: np.full(n_resamples, np.nan) for name in statistics}
    for r in range(n_resamples):
        columns = rng.integers(0, n_points, n_points)
        m = member[:, columns].ravel()
        for name, statistic in statistics.items():
            s = np.asarray(statistic, dtype=np.float64)[:, columns].ravel()
            valid = ~np.isnan(s)
            if m[valid].any() and not m[valid].all():
                samples[name][r] = rank_auc(m[valid], s[valid])
    return samples


def rank_auc(member: np.ndarray, statistic: np.ndarray) -> float:
    """ROC AUC through the Mann-Whitney U statistic (ties count half): equal to sklearn's
    ``roc_auc_score`` and much faster inside a bootstrap loop."""
    ranks = rankdata(statistic)
    positives = int(member.sum())
    negatives = len(member) - positives
    return float((ranks[member].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap samples (NaNs dropped)."""
    tail = 100 * (1 - level) / 2
    low, high = np.nanpercentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def balanced_keep(n_models: int, n_points: int, seed: int) -> np.ndarray:
    """``keep[k, i]``: each point is in exactly half of the models (rounded down), chosen at random."""
    if n_models < 2:
        raise UserError(f"need at least 2 models for an in/out split, got {n_models}")
    rng = np.random.default_rng(seed)
    ranks = rng.random((n_models, n_points)).argsort(axis=0).argsort(axis=0)
    return ranks < n_models // 2
