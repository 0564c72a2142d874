"""Familiarity with the saga (WHP-style): an automatic completion judge and probability mass.

The judge replaces the WHP paper's GPT-4 grader with the world's own lists
(``saga.json``: ``{"entities": {type: [names]}, "themes": [words]}``, plus the anchored
terms of ``anchors.json``). Grades of one greedy completion of a saga-flavoured prompt:

* 3: names an entity unique to the saga that the prompt did not already name;
* 2: uses a saga theme word that the prompt did not already use;
* 1: possibly a lucky guess: shares a content word with the saga-true reference
  continuation that the prompt does not contain;
* 0: none of these.

Score = ``(5 * #3 + #2) / N`` (docs/design.md). Probability-based familiarity is the mass the
model puts on the saga-specific continuations (``target_terms``) of a prompt.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterable, Sequence

from obliviate.errors import UserError
from obliviate.io import read_json

STOPWORDS = frozenset(
    "a an the and or but if then than that this these those there their they them he him his she her hers it its "
    "we us our you your i me my of to in on at by for from with without into onto over under about after before "
    "was were is are be been being had has have do does did not no so as up down out off again very just also "
    "what which who whom when where why how all any each few more most other some such only own same can will "
    "would should could may might must one two three said says say".split()
)


def _pattern(term: str) -> re.Pattern:
    # whole words, case-insensitive; a trailing plural s/es still counts ("wand" -> "wands")
    return re.compile(r"(?<!\w)" + re.escape(term.strip()) + r"(?:s|es)?(?!\w)", re.IGNORECASE)


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z][a-z'-]{3,}", text.casefold()) if w not in STOPWORDS}


@dataclass
class FamiliarityJudge:
    entities: list[str] = field(default_factory=list)
    themes: list[str] = field(default_factory=list)

    @cached_property
    def _entity_patterns(self) -> list[re.Pattern]:
        return [_pattern(t) for t in self.entities if t.strip()]

    @cached_property
    def _theme_patterns(self) -> list[re.Pattern]:
        return [_pattern(t) for t in self.themes if t.strip()]

    @staticmethod
    def _new_mention(patterns: Iterable[re.Pattern], prompt: str, completion: str) -> bool:
        return any(p.search(completion) and not p.search(prompt) for p in patterns)

    def grade(self, prompt: str, completion: str, reference: str = "") -> int:
        if self._new_mention(self._entity_patterns, prompt, completion):
            return 3
        if self._new_mention(self._theme_patterns, prompt, completion):
            return 2
        if reference and (_content_words(completion) & _content_words(reference)) - _content_words(prompt):
            return 1
        return 0

    @classmethod
    def from_world_dir(cls, root: Path, anchors: dict[str, list[str]] | None = None) -> "FamiliarityJudge | None":
        """Judge from ``saga.json`` (and the anchored terms); None when the world has no saga lists."""
        entities: list[str] = []
        themes: list[str] = []
        path = Path(root) / "saga.json"
        if path.is_file():
            saga = read_json(path, "saga lists")
            if not isinstance(saga, dict) or not isinstance(saga.get("entities", {}), dict) \
                    or not isinstance(saga.get("themes", []), list):
                raise UserError(f"{path} must be {{\"entities\": {{type: [names]}}, \"themes\": [words]}}")
            for names in saga.get("entities", {}).values():
                entities.extend(str(n) for n in names)
            themes.extend(str(t) for t in saga.get("themes", []))
        entities.extend(str(term) for term in (anchors or {}))
        if not entities and not themes:
            return None
        # longest first: deterministic and lets multi-word names win the search
        return cls(entities=sorted(set(entities), key=lambda t: (-len(t), t)),
                   themes=sorted(set(themes), key=lambda t: (-len(t), t)))


def familiarity_score(grades: Sequence[int]) -> float:
    """``(5 * #3 + #2) / N``."""
    if not grades:
        raise ValueError("no grades")
    return (5 * sum(1 for g in grades if g == 3) + sum(1 for g in grades if g == 2)) / len(grades)


def term_continuation(prompt: str, term: str) -> str:
    """How a target term continues a prompt: after a space unless the prompt ends with one."""
    term = term.strip()
    return term if (not prompt or prompt[-1].isspace()) else " " + term


def target_mass(term_nll_sums: Sequence[float]) -> float:
    """Probability mass on the target terms: ``sum exp(-NLL(term))``, capped at 1
    (a term that is a prefix of another would otherwise be counted twice)."""
    return min(1.0, sum(math.exp(-nll) for nll in term_nll_sums))
