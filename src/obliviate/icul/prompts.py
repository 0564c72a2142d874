"""In-context unlearning prompts (Pawelczyk et al., "In-Context Unlearning").

To unlearn training points at inference, the model is queried with a context that holds
the forget points with their labels flipped, then ``s`` correctly labelled training points,
then the query::

    {forget text} {flipped label}\n{demo 1} {label 1}\n ... {demo s} {label s}\n{query text}

and the prediction is the label whose continuation `` {label}`` is most likely. The
ablations of the paper keep the same layout and change the first part: ``correct`` keeps
the forget points' true labels (plain in-context learning), ``random`` flips the labels of
as many *other* random training points instead, ``none`` has no first part at all.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from obliviate.errors import UserError
from obliviate.world.classification import ClassificationExample

MODES = ("flip", "correct", "random", "none")


@dataclass
class IculPromptConfig:
    shots: int = 4            # s: correctly labelled demonstrations after the forget part
    mode: str = "flip"        # flip (ICUL) | correct | random | none
    separator: str = "\n"     # between labelled examples, and before the query

    def validate(self) -> "IculPromptConfig":
        if self.mode not in MODES:
            raise UserError(f"unknown ICUL mode {self.mode!r}; valid: {', '.join(MODES)}")
        if self.shots < 0:
            raise UserError(f"shots must be >= 0, got {self.shots}")
        return self


def labelled(text: str, label: str) -> str:
    """A demonstration line as the model was fine-tuned on it: ``"{text} {label}"``."""
    return f"{text} {label}"


def label_continuation(label: str) -> str:
    """What is scored after a query: the label with its leading space."""
    return f" {label}"


def flip_label(label: str, labels: Sequence[str], rng: random.Random) -> str:
    """A label different from ``label``: the other one for binary tasks, else a random other one."""
    if label not in labels:
        raise UserError(f"label {label!r} is outside the label set {list(labels)}")
    others = [candidate for candidate in labels if candidate != label]
    if not others:
        raise UserError(f"cannot flip label {label!r}: the label set {list(labels)} has no other label")
    return others[0] if len(others) == 1 else rng.choice(others)


@dataclass
class IculContext:
    lines: list[tuple[str, str]]   # (text, label shown) in prompt order
    forget_ids: list[str]          # ids of the examples in the first (forget) part
    demo_ids: list[str]

    def text(self, separator: str = "\n") -> str:
        return "".join(labelled(text, label) + separator for text, label in self.lines)

    def prompt(self, query: str, separator: str = "\n") -> str:
        return self.text(separator) + query


def build_context(
    forget: Sequence[ClassificationExample],
    pool: Sequence[ClassificationExample],
    labels: Sequence[str],
    config: IculPromptConfig,
    rng: random.Random,
) -> IculContext:
    """The ICUL context for unlearning ``forget``; demonstrations are drawn from ``pool``
    (the training points, forget points excluded) with their true labels."""
    config.validate()
    forget_ids = {e.id for e in forget}
    candidates = [e for e in pool if e.id not in forget_ids]
    first: list[ClassificationExample] = []
    if config.mode in ("flip", "correct"):
        first = list(forget)
        shown = [flip_label(e.label, labels, rng) if config.mode == "flip" else e.label for e in first]
    elif config.mode == "random":
        if len(candidates) < len(forget):
            raise UserError(f"mode 'random' needs {len(forget)} training points besides the forget points, "
                            f"the pool has {len(candidates)}")
        first = rng.sample(candidates, len(forget))
        shown = [flip_label(e.label, labels, rng) for e in first]
    else:
        shown = []
    first_ids = {e.id for e in first}
    remaining = [e for e in candidates if e.id not in first_ids]
    if config.shots > len(remaining):
        raise UserError(f"shots={config.shots} is more than the {len(remaining)} training points available as "
                        "demonstrations (training set minus the forget points)")
    demos = rng.sample(remaining, config.shots)
    lines = [(e.text, label) for e, label in zip(first, shown)] + [(e.text, e.label) for e in demos]
    return IculContext(lines=lines, forget_ids=[e.id for e in first], demo_ids=[e.id for e in demos])
