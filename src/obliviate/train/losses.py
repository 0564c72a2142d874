"""Loss helpers shared by every post-hoc unlearning method (docs/design.md "Method formulas").

All functions take causal-LM ``logits`` of shape [B, T, V] and ``labels`` of shape
[B, T] in the Hugging Face convention: position t's logits predict token t+1, and
label -100 marks tokens that are not scored (prompt and padding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def _shift(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Align predictions with targets: (logits[:, :-1], targets[:, 1:], mask[:, 1:])."""
    shifted_logits = logits[:, :-1, :]
    targets = labels[:, 1:]
    mask = targets.ne(IGNORE_INDEX)
    return shifted_logits, targets.masked_fill(~mask, 0), mask


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of every target token, [B, T-1], and the mask of scored tokens."""
    shifted_logits, targets, mask = _shift(logits, labels)
    logprobs = torch.log_softmax(shifted_logits.float(), dim=-1)
    picked = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return picked * mask, mask


def sequence_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probability of the labelled tokens per sequence, [B], and their count, [B]."""
    picked, mask = token_logprobs(logits, labels)
    return picked.sum(dim=-1), mask.sum(dim=-1)


def nll_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood over all labelled tokens of the batch (the usual LM loss)."""
    picked, mask = token_logprobs(logits, labels)
    return -picked.sum() / mask.sum().clamp(min=1)


def npo_loss(logp: torch.Tensor, logp_ref: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """NPO: ``-(2/b) * mean(logsigmoid(-b * (logp - logp_ref)))`` on summed sequence log-probs."""
    return -(2.0 / beta) * F.logsigmoid(-beta * (logp - logp_ref)).mean()


def simnpo_loss(logp: torch.Tensor, lengths: torch.Tensor, beta: float = 2.5, gamma: float = 0.0) -> torch.Tensor:
    """SimNPO: ``-(2/b) * mean(logsigmoid(-b * logp/|f| - gamma))``, length-normalised, no reference."""
    return -(2.0 / beta) * F.logsigmoid(-beta * logp / lengths.clamp(min=1) - gamma).mean()


def dpo_loss(
    logp_chosen: torch.Tensor,
    logp_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
) -> torch.Tensor:
    """DPO: ``-mean(logsigmoid(b * ((lp_c - ref_c) - (lp_r - ref_r))))`` on summed sequence log-probs."""
    margin = (logp_chosen - ref_chosen) - (logp_rejected - ref_rejected)
    return -F.logsigmoid(beta * margin).mean()


def kl_to_reference(logits: torch.Tensor, ref_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token-level ``KL(ref || model)`` of the next-token distributions, averaged over ``mask`` [B, T].

    ``mask`` marks the positions whose predictions are compared (usually the attention
    mask: every real token, prompt included, so that the model's behaviour on retain
    text stays that of the reference).
    """
    logq = torch.log_softmax(logits.float(), dim=-1)
    logp = torch.log_softmax(ref_logits.float(), dim=-1)
    per_token = (logp.exp() * (logp - logq)).sum(dim=-1)
    mask = mask.to(per_token.dtype)
    return (per_token * mask).sum() / mask.sum().clamp(min=1)


def masked_mse(hidden: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over masked positions of the per-position mean squared error (RMU's distance)."""
    per_position = (hidden.float() - target.float()).pow(2).mean(dim=-1)
    mask = mask.to(per_position.dtype)
    return (per_position * mask).sum() / mask.sum().clamp(min=1)
