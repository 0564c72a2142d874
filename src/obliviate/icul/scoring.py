"""Label log-probabilities of classification prompts, through the project's scoring engine."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from obliviate.eval.scoring import ScoringConfig, score_continuations
from obliviate.icul.prompts import label_continuation


def label_logprobs(model, tokenizer, prompts: Sequence[str], labels: Sequence[str],
                   batch_size: int = 32) -> np.ndarray:
    """``[N, L]``: summed log-prob of the continuation `` {label}`` after each prompt."""
    pairs = [(prompt, label_continuation(label)) for prompt in prompts for label in labels]
    scores = score_continuations(model, tokenizer, pairs, ScoringConfig(batch_size=batch_size))
    values = np.array([-s.nll_sum for s in scores], dtype=np.float64)
    return values.reshape(len(prompts), len(labels))
