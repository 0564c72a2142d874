"""The gradient-norm pass of membership inference (open-unlearning's mia/gradnorm.py).

Per (prompt, continuation): the mean NLL of the continuation's tokens (no EOS, as
open-unlearning's ``tokenwise_logprobs`` drops it), its gradient with respect to every
parameter, and the mean over parameters of each gradient's p-norm. Members of the
training data tend to have smaller gradients (arXiv 2402.17012).

Differences from open-unlearning, on purpose: gradients come from ``torch.autograd.grad``,
so a model's accumulated ``.grad`` buffers are left alone (theirs zeroes them), and the
model stays in eval mode (theirs switches to train mode: the same numbers for models
without dropout, such as ours; deterministic ones for the others).
"""

from __future__ import annotations

import logging
import math
from typing import Sequence

import torch

from obliviate.eval.scoring import encode_pairs, model_device, model_max_length

logger = logging.getLogger(__name__)

P_NORMS = (1.0, 2.0, math.inf)


def gradient_norms(model, tokenizer, pairs: Sequence[tuple[str, str]], p: float = 2.0,
                   add_special_tokens: bool = True) -> list[float] | None:
    """Mean per-parameter gradient p-norm of each pair's continuation loss, in pair order;
    None when the model cannot be differentiated (e.g. quantized weights)."""
    if p not in P_NORMS:
        raise ValueError(f"gradient norm p must be 1, 2 or inf, got {p}")
    params = list(model.parameters())
    trainable = [q for q in params if q.is_floating_point()]
    if not pairs or not trainable:
        return [] if not pairs else None
    encoded = encode_pairs(tokenizer, pairs, model_max_length(model, None), add_special_tokens)
    device = model_device(model)
    saved = [q.requires_grad for q in trainable]
    was_training = model.training
    norms: list[float] = []
    try:
        model.eval()
        for q in trainable:
            q.requires_grad_(True)
        with torch.enable_grad():
            for pair in encoded:
                ids = torch.tensor([pair.input_ids], device=device)
                logits = model(input_ids=ids, use_cache=False).logits[0, pair.start - 1:-1].float()
                loss = torch.nn.functional.cross_entropy(logits, ids[0, pair.start:])
                grads = torch.autograd.grad(loss, trainable, allow_unused=True)
                per_param = [g.detach().float().norm(p=p) for g in grads if g is not None]
                norms.append(float(torch.stack(per_param).mean()))
    except RuntimeError as exc:  # weights that autograd cannot reach (quantized, frozen buffers)
        logger.warning("gradient-norm MIA skipped: %s", exc)
        return None
    finally:
        for q, flag in zip(trainable, saved):
            q.requires_grad_(flag)
        model.train(was_training)
    return norms
