"""Typed fact templates and the QA items built from them.

A fact is a template plus slot values plus one typed ``value``. The same template
gives the question, the answer, a paraphrase, the narrative phrasings, and the
perturbed answers (the answer's template with a wrong value of the same type, as DESIGN.md
fixes it). Perturbing the paraphrase instead (TOFU's convention) was measured and rejected
for the small models here: paraphrases often state the value before the name, so a model
that knows the fact gains nothing there and the truth ratio stops separating the full model
from the retrained one (micro: forget quality 0.05 instead of ~0.01).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Mapping, Sequence


@dataclass(frozen=True)
class FactTemplate:
    key: str
    question: str
    answer: str  # must contain "{value}" once and must not start with it
    paraphrase: str
    statements: tuple[str, ...]  # narrative phrasings for the corpus

    def __post_init__(self) -> None:
        if self.answer.count("{value}") != 1 or self.answer.startswith("{value}"):
            raise ValueError(f"fact {self.key}: answer template must hold {{value}} once, not first")


def capitalize_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def fill(template: str, slots: Mapping[str, str], value: str) -> str:
    """Fill a template; the sentence always starts with a capital letter."""
    return capitalize_first(template.format(**slots, value=value))


def choose_wrong(rng: random.Random, pool: Sequence[str], value: str, k: int = 5) -> list[str]:
    """``k`` distinct wrong values of the same type; none contains (or is inside) the right one."""
    seen: set[str] = set()
    candidates: list[str] = []
    for item in pool:
        if item in seen or item == value or value in item or item in value:
            continue
        seen.add(item)
        candidates.append(item)
    if len(candidates) < k:
        raise ValueError(f"value pool too small for 5 wrong answers to {value!r}: {len(candidates)} candidates")
    return rng.sample(candidates, k)


def qa_item(item_id: str, source_id: int, kind: str, template: FactTemplate, slots: Mapping[str, str],
            value: str, wrong_values: Sequence[str], split: str | None = None) -> dict:
    """One QA row in the DESIGN.md schema (``split`` may be filled in once splits are drawn)."""
    answer = fill(template.answer, slots, value)
    if answer.count(value) != 1:
        raise ValueError(f"QA {item_id}: value {value!r} must occur exactly once in {answer!r}")
    perturbed = [fill(template.answer, slots, wrong) for wrong in wrong_values]
    if len(set(perturbed)) != len(perturbed) or answer in perturbed:
        raise ValueError(f"QA {item_id}: perturbed answers must be distinct and wrong")
    return {
        "id": item_id,
        "source_id": source_id,
        "kind": kind,
        "question": fill(template.question, slots, value),
        "answer": answer,
        "paraphrased_answer": fill(template.paraphrase, slots, value),
        "perturbed_answers": perturbed,
        "split": split,
        "value": value,
    }

