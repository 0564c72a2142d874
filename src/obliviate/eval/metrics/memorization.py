"""Teacher-forced memorization of answers from per-token argmax-match flags."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def exact_memorization(argmax_match: Sequence[bool]) -> float:
    """Share of label tokens whose teacher-forced argmax equals the label."""
    flags = np.asarray(argmax_match, dtype=bool)
    if flags.size == 0:
        raise ValueError("no tokens")
    return float(flags.mean())


def extraction_strength(argmax_match: Sequence[bool]) -> float:
    """``1 - k/|y|``: k is the first position from which the argmax matches every later token.

    All tokens matched: k = 0, strength 1. When no suffix matches (the last token is
    missed) k stays at ``|y| - 1``, so the floor is ``1/|y|``, not 0: open-unlearning's
    memorization.py:extraction_strength searches k in ``0..|y|-1`` and keeps the last one.
    """
    flags = np.asarray(argmax_match, dtype=bool)
    if flags.size == 0:
        raise ValueError("no tokens")
    misses = np.flatnonzero(~flags)
    k = 0 if misses.size == 0 else min(int(misses[-1]) + 1, flags.size - 1)
    return 1.0 - k / flags.size
