"""Typed fact templates and the QA items built from them.

A fact is a template plus slot values plus one typed ``value``. The same template
gives the question, the answer, a paraphrase, the narrative phrasings, and the
perturbed answers (the paraphrase's template with a wrong value of the same type, as in
TOFU: the six sentences the truth ratio compares then differ only in the value, so it
measures the fact, not the wording). Author paraphrases state the value after the name, so
that a model that knows the fact can use it (measured on micro: value-first paraphrases
left the full model's forget quality at 0.05; perturbing the answer's template instead
measured the template's familiarity, forget quality 0.17).
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
            value: str, wrong_values: Sequence[str], split: str | None = None, perturb_answer: bool = False) -> dict:
    """One QA row in the docs/design.md schema (``split`` may be filled in once splits are drawn).

    The perturbed answers follow the paraphrase's wording (TOFU's forget / retain sets, whose
    truth ratio compares them with the paraphrase) or, with ``perturb_answer``, the answer's
    (TOFU's real-authors / world-facts sets, compared with the original answer): either way
    the truth ratio then measures the fact, not the wording."""
    answer = fill(template.answer, slots, value)
    if answer.count(value) != 1:
        raise ValueError(f"QA {item_id}: value {value!r} must occur exactly once in {answer!r}")
    paraphrase = fill(template.paraphrase, slots, value)
    wording = template.answer if perturb_answer else template.paraphrase
    perturbed = [fill(wording, slots, wrong) for wrong in wrong_values]
    if len(set(perturbed)) != len(perturbed) or paraphrase in perturbed or answer in perturbed:
        raise ValueError(f"QA {item_id}: perturbed answers must be distinct and wrong")
    return {
        "id": item_id,
        "source_id": source_id,
        "kind": kind,
        "question": fill(template.question, slots, value),
        "answer": answer,
        "paraphrased_answer": paraphrase,
        "perturbed_answers": perturbed,
        "split": split,
        "value": value,
    }

