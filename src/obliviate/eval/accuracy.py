"""Greedy exact-answer accuracy of a set of QA items (the headline "does it still know?")."""

from __future__ import annotations

from typing import Sequence

from obliviate.data.format import PLAIN, QAFormat
from obliviate.eval.generation import GreedyConfig, generate_greedy
from obliviate.eval.metrics.qa import answer_value, contains_answer


def answer_accuracy(model, tokenizer, items: Sequence[dict], max_new_tokens: int = 24, batch_size: int = 64,
                    fmt: QAFormat = PLAIN) -> float:
    """Share of ``items`` whose greedy answer (first line) contains the item's ``value``."""
    if not items:
        return float("nan")
    answers = generate_greedy(model, tokenizer, [fmt.prompt(q["question"]) for q in items],
                              GreedyConfig(max_new_tokens=max_new_tokens, batch_size=batch_size, stop_strings=("\n",),
                                           add_special_tokens=fmt.add_special_tokens))
    return sum(contains_answer(a, answer_value(q)) for a, q in zip(answers, items)) / len(items)
