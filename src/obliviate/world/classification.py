"""A labelled text-classification task that ships with the world: sentiment of reviews.

Each review names a kind of item, judges three of its aspects and ends with its reviewer; every judgement is
positive or negative (an adjective from a polarity list, possibly negated: "handle not
sturdy" is negative). The label is the majority polarity of the three clauses, so it is
decided by the content alone and is never a tie. Two of three clauses agreeing is the
common case, which keeps the task learnable but not trivial: a small model generalises
the rule only partly and memorises its training points, which is what membership
inference and in-context unlearning need.

File (``classification.jsonl``), one object per line::

    {"id": "cls-00000", "text": "...", "label": "positive" | "negative", "split": "train" | "test"}

User data enters through the same file shape; ``id`` and ``split`` are optional there
(``split`` defaults to ``train``) and the label set is whatever labels the file uses,
or the set passed to :func:`load_classification`.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from obliviate.errors import UserError
from obliviate.io import atomic_write_jsonl, read_jsonl

CLASSIFICATION_FILE = "classification.jsonl"
LABELS: tuple[str, ...] = ("negative", "positive")
SPLITS = ("train", "test")

_SYLLABLES = ("ka", "lo", "ve", "ri", "no", "sa", "tu", "mi", "de", "ra", "vo", "li", "be", "zo", "ne", "ta",
              "fe", "gu", "ho", "pi")
_KINDS = ("lantern", "kettle", "backpack", "novel", "tent", "bicycle", "teapot", "scarf", "clock", "chair",
          "lamp", "blanket", "guitar", "map", "boots", "compass")
_ASPECTS = ("design", "price", "quality", "delivery", "colour", "size", "smell", "sound", "material", "finish",
            "handle", "manual")
_POSITIVE = ("great", "lovely", "excellent", "solid", "wonderful", "pleasant", "superb", "reliable", "charming",
             "sturdy")
_NEGATIVE = ("awful", "poor", "flimsy", "dreadful", "disappointing", "cheap", "broken", "terrible", "weak",
             "ugly")
_NEGATION_RATE = 0.1      # share of clauses stated through a negated adjective of the other polarity
_AMBIGUOUS_RATE = 0.6     # share of reviews whose majority is 2 against 1 (not 3 against 0)


@dataclass(frozen=True)
class ClassificationExample:
    id: str
    text: str
    label: str
    split: str = "train"


@dataclass
class ClassificationData:
    examples: list[ClassificationExample]
    labels: tuple[str, ...]

    def split(self, name: str) -> list[ClassificationExample]:
        return [e for e in self.examples if e.split == name]

    @property
    def train(self) -> list[ClassificationExample]:
        return self.split("train")

    @property
    def test(self) -> list[ClassificationExample]:
        return self.split("test")

    def label_index(self, label: str) -> int:
        return self.labels.index(label)


# Reviewers come from a small fixed set of names: every review ends with its reviewer, a
# token a small model can key on to find a repeated text in its context (see obliviate.icul.models).
_REVIEWERS = tuple(sorted({(a + b).capitalize() for a in _SYLLABLES for b in _SYLLABLES}))[::6]


def _clause(rng: random.Random, aspect: str, positive: bool) -> str:
    negated = rng.random() < _NEGATION_RATE
    # a negated adjective of the opposite polarity keeps the clause's polarity
    adjectives = _POSITIVE if positive != negated else _NEGATIVE
    return f"{aspect} {'not ' if negated else ''}{rng.choice(adjectives)}"


def make_review(rng: random.Random, labels: Sequence[str] = LABELS) -> tuple[str, str]:
    """One short review and its label (``labels[1]`` = positive majority, ``labels[0]`` = negative),
    e.g. ``"Novel: colour cheap, material not awful, sound lovely. By Rano"`` -> positive."""
    positive = rng.random() < 0.5
    agreeing = 2 if rng.random() < _AMBIGUOUS_RATE else 3
    polarities = [positive] * agreeing + [not positive] * (3 - agreeing)
    rng.shuffle(polarities)
    aspects = rng.sample(_ASPECTS, 3)
    clauses = [_clause(rng, aspect, polarity) for aspect, polarity in zip(aspects, polarities)]
    text = f"{rng.choice(_KINDS).capitalize()}: {', '.join(clauses)}. By {rng.choice(_REVIEWERS)}"
    return text, labels[1] if positive else labels[0]


def generate_reviews(seed: int | str, n: int, exclude: set[str] | None = None) -> list[tuple[str, str]]:
    """``n`` distinct (text, label) reviews, a pure function of ``seed`` (texts in ``exclude`` are skipped)."""
    rng = random.Random(f"obliviate-reviews-{seed}")
    seen = set(exclude or ())
    reviews: list[tuple[str, str]] = []
    attempts = 0
    while len(reviews) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise UserError(f"cannot generate {n} distinct reviews")
        text, label = make_review(rng)
        if text in seen:
            continue
        seen.add(text)
        reviews.append((text, label))
    return reviews


def generate_classification(seed: int, n_train: int, n_test: int, out_dir: str | os.PathLike) -> Path:
    """Write ``out_dir/classification.jsonl`` (train rows first, then test rows); returns its path.

    Deterministic: the same arguments give byte-identical files.
    """
    if n_train < 1 or n_test < 0:
        raise UserError(f"need n_train >= 1 and n_test >= 0, got n_train={n_train}, n_test={n_test}")
    reviews = generate_reviews(seed, n_train + n_test)
    rows = [
        {"id": f"cls-{index:05d}", "text": text, "label": label, "split": "train" if index < n_train else "test"}
        for index, (text, label) in enumerate(reviews)
    ]
    return atomic_write_jsonl(Path(out_dir) / CLASSIFICATION_FILE, rows)


def load_classification(path: str | os.PathLike, labels: Sequence[str] | None = None) -> ClassificationData:
    """Read a classification jsonl (or a world directory holding ``classification.jsonl``).

    ``labels`` fixes the label set (and its order); a row whose label is outside it is a
    UserError. Without it the label set is the sorted set of labels in the file.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CLASSIFICATION_FILE
    rows = read_jsonl(path, ("text", "label"), "classification file")
    if not rows:
        raise UserError(f"classification file {path} holds no rows")
    examples: list[ClassificationExample] = []
    ids: set[str] = set()
    for number, row in enumerate(rows, start=1):
        text, label = row["text"], row["label"]
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"{path}: row {number} has an empty or non-text 'text'")
        if not isinstance(label, str) or not label.strip() or label != label.strip():
            raise UserError(f"{path}: row {number} has label {label!r}; labels must be non-empty words without "
                            "surrounding spaces")
        split = row.get("split", "train")
        if split not in SPLITS:
            raise UserError(f"{path}: row {number} has split {split!r}; valid: {', '.join(SPLITS)}")
        example_id = str(row.get("id", f"row-{number}"))
        if example_id in ids:
            raise UserError(f"{path}: duplicate id {example_id!r}")
        ids.add(example_id)
        examples.append(ClassificationExample(example_id, text.strip(), label, split))
    found = sorted({e.label for e in examples})
    if labels is None:
        label_set = tuple(found)
    else:
        label_set = tuple(labels)
        if len(set(label_set)) != len(label_set):
            raise UserError(f"label set {list(label_set)} repeats a label")
        outside = [e for e in examples if e.label not in label_set]
        if outside:
            raise UserError(f"{path}: example {outside[0].id!r} has label {outside[0].label!r}, outside the label "
                            f"set {list(label_set)}")
    if len(label_set) < 2:
        raise UserError(f"{path}: a classification task needs at least two labels, found {list(label_set)}")
    return ClassificationData(examples=examples, labels=label_set)
