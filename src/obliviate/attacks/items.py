"""Which QA items an attack targets, and the deterministic relearn / held-apart split.

The relearning attack (and the GCG suffix search) train or optimise on one part of each
forgotten source's facts and grade the other part: a model can only answer the held-apart
facts after the attack if the knowledge was still in its weights.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Sequence

from obliviate.errors import UserError
from obliviate.eval.metrics.qa import answer_value

DEFAULT_KINDS = ("unique",)


def select_items(world, split: str, kinds: Sequence[str] | None) -> list[dict]:
    """QA items of ``split`` of the given fact kinds, in a stable order (by id)."""
    items = world.qa_for(split, tuple(kinds) if kinds else None)
    if not items:
        which = f" of kind {', '.join(kinds)}" if kinds else ""
        raise UserError(f"split {split!r} has no QA items{which}: nothing to attack "
                        f"(choose other fact kinds with --set kinds=unique,shared,inferred)")
    return sorted(items, key=lambda item: str(item["id"]))


def group_by_source(items: Sequence[dict]) -> dict[int, list[dict]]:
    grouped: dict[int, list[dict]] = {}
    for item in sorted(items, key=lambda item: (int(item["source_id"]), str(item["id"]))):
        grouped.setdefault(int(item["source_id"]), []).append(item)
    return grouped


@dataclass
class ItemSplit:
    relearn: list[dict]   # shown to the attack (fine-tuned on, or used to optimise a suffix)
    held: list[dict]      # graded: never shown to the attack

    def ids(self) -> dict[str, list[str]]:
        return {"relearn": [str(i["id"]) for i in self.relearn], "held": [str(i["id"]) for i in self.held]}


def split_by_source(items: Sequence[dict], seed: int, relearn_fraction: float = 0.5) -> ItemSplit:
    """Within each source, ``floor(n * relearn_fraction)`` items (seeded shuffle) go to the
    relearn part and the rest are held apart. A source with one item keeps it held apart."""
    if not 0.0 < relearn_fraction < 1.0:
        raise UserError(f"relearn_fraction must be strictly between 0 and 1, got {relearn_fraction}")
    relearn: list[dict] = []
    held: list[dict] = []
    for source, group in group_by_source(items).items():
        # a string seed is hashed with SHA-512 by `random`: stable across runs and platforms
        order = list(group)
        random.Random(f"obliviate-split:{seed}:{source}").shuffle(order)
        count = int(len(order) * relearn_fraction)
        relearn.extend(order[:count])
        held.extend(order[count:])
    key = lambda item: str(item["id"])  # noqa: E731
    return ItemSplit(relearn=sorted(relearn, key=key), held=sorted(held, key=key))


def _split_on_value(text: str, value: str) -> tuple[str, str] | None:
    position = text.find(value)
    if not value or position < 0 or value == text:
        return None
    return text[:position], text[position + len(value):]


def template_parts(item: dict) -> tuple[str, str, str] | None:
    """``(before, value, after)`` of the answer around its key value, or None when the
    value does not occur in the answer (then cloze and value-slot forms cannot be built)."""
    value = answer_value(item)
    parts = _split_on_value(str(item["answer"]), value)
    return None if parts is None else (parts[0], value, parts[1])


def _values_in_template(item: dict, reference: str) -> list[str]:
    """Wrong values of the perturbed answers that share ``reference``'s template."""
    value = answer_value(item)
    parts = _split_on_value(reference, value)
    if parts is None:
        return []
    before, after = parts
    values = []
    for perturbed in item["perturbed_answers"]:
        perturbed = str(perturbed)
        if perturbed.startswith(before) and perturbed.endswith(after) and len(perturbed) > len(before) + len(after):
            wrong = perturbed[len(before): len(perturbed) - len(after)]
            if wrong != value and wrong not in values:
                values.append(wrong)
    return values


def perturbed_values(item: dict) -> list[str]:
    """The wrong values of the perturbed answers. Perturbed answers keep a template and change
    the value: the answer's template, or (TOFU style) the paraphrased answer's."""
    for reference in (str(item["answer"]), str(item["paraphrased_answer"])):
        values = _values_in_template(item, reference)
        if values:
            return values
    return []


def true_option(item: dict) -> str:
    """The correct answer in the perturbed answers' template (the answer, or the paraphrased
    answer when the perturbed answers are perturbations of it), so that choosing between
    options by likelihood compares values, not phrasings."""
    answer, paraphrased = str(item["answer"]), str(item["paraphrased_answer"])
    if not _values_in_template(item, answer) and _values_in_template(item, paraphrased):
        return paraphrased
    return answer


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def strip_facts(text: str, values: Sequence[str]) -> str:
    """``text`` without the sentences that mention any of ``values`` (case-insensitive).

    A paragraph in QA form (``Question: ...``) is dropped whole when it mentions a value,
    so that no dangling question stays behind.
    """
    needles = [v.casefold() for v in values if v.strip()]
    kept_paragraphs = []
    for paragraph in text.split("\n\n"):
        folded = paragraph.casefold()
        if not any(n in folded for n in needles):
            kept_paragraphs.append(paragraph)
            continue
        if paragraph.lstrip().startswith("Question:"):
            continue
        sentences = [s for s in _SENTENCE_END.split(paragraph) if not any(n in s.casefold() for n in needles)]
        if sentences:
            kept_paragraphs.append(" ".join(sentences))
    return "\n\n".join(p for p in kept_paragraphs if p.strip())
