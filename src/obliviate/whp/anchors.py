"""Anchored-term dictionaries: loading, validation, and finding terms in text on token boundaries.

A dictionary maps each idiosyncratic term of the unlearning target to generic
alternatives: ``{"Kellinmoor Academy": ["the academy", "the school"], ...}``.
"""

from __future__ import annotations

import bisect
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from obliviate.errors import UserError
from obliviate.io import read_json

AnchorDict = dict[str, list[str]]


def validate_anchors(raw: Any, where: str = "anchored-term dictionary") -> AnchorDict:
    """Check a ``{term: [alternatives]}`` mapping; a bare string counts as one alternative.

    Raises UserError for anything a person must fix: not an object, an empty term,
    a term mapped to nothing, alternatives that are not strings.
    """
    if not isinstance(raw, Mapping):
        raise UserError(f"{where} must be a JSON object mapping terms to lists of alternatives, "
                        f"got {type(raw).__name__}")
    anchors: AnchorDict = {}
    for term, alternatives in raw.items():
        if not isinstance(term, str) or not term.strip():
            raise UserError(f"{where}: empty term")
        if isinstance(alternatives, str):
            alternatives = [alternatives]
        if not isinstance(alternatives, list):
            raise UserError(f"{where}: term {term!r} must map to a list of alternatives, "
                            f"got {type(alternatives).__name__}")
        if not all(isinstance(a, str) for a in alternatives):
            raise UserError(f"{where}: term {term!r} has an alternative that is not a string")
        cleaned = [a.strip() for a in alternatives if a.strip()]
        if not cleaned:
            raise UserError(f"{where}: term {term!r} maps to no alternative")
        anchors[term.strip()] = list(dict.fromkeys(cleaned))
    if not anchors:
        raise UserError(f"{where} is empty")
    return anchors


def load_anchors(path: str | os.PathLike) -> AnchorDict:
    path = Path(path)
    return validate_anchors(read_json(path, "anchored-term dictionary"), where=f"anchored-term dictionary {path}")


@dataclass(frozen=True)
class Occurrence:
    """A term found in a text: characters ``[start, end)`` and tokens ``[first_token, last_token]``."""

    term: str
    start: int
    end: int
    first_token: int
    last_token: int


class AnchorMatcher:
    """Finds whole-word occurrences of the terms, longest term first, case-sensitive."""

    def __init__(self, terms: Sequence[str]):
        terms = sorted({t for t in terms if t}, key=lambda t: (-len(t), t))
        if not terms:
            raise UserError("no anchored terms to match")
        self.terms = terms
        alternation = "|".join(re.escape(t) for t in terms)
        # Word boundaries that also hold for terms starting/ending with punctuation.
        self._pattern = re.compile(rf"(?<![\w])(?:{alternation})(?![\w])")

    def find(self, text: str) -> list[tuple[int, int, str]]:
        return [(m.start(), m.end(), m.group(0)) for m in self._pattern.finditer(text)]

    def find_aligned(self, text: str, offsets: Sequence[tuple[int, int]]) -> tuple[list[Occurrence], int]:
        """Occurrences whose characters are exactly covered by whole tokens, and the count skipped."""
        found: list[Occurrence] = []
        skipped = 0
        index = TokenIndex(text, offsets)
        for start, end, term in self.find(text):
            span = index.align(start, end)
            if span is None:
                skipped += 1
                continue
            found.append(Occurrence(term, start, end, span[0], span[1]))
        return found, skipped


class TokenIndex:
    """Maps character spans to token spans using a fast tokenizer's offsets.

    A span is aligned when its first token starts at the span (or only whitespace
    lies between the token's start and the span: byte-level BPE keeps the leading
    space inside the token) and its last token ends exactly at the span's end.
    Special tokens (empty offsets) never take part.
    """

    def __init__(self, text: str, offsets: Sequence[tuple[int, int]]):
        self.text = text
        self.offsets = [tuple(o) for o in offsets]
        self._real = [k for k, (s, e) in enumerate(self.offsets) if e > s]
        self._starts = [self.offsets[k][0] for k in self._real]  # monotone for fast tokenizers

    def token_at(self, char: int) -> int | None:
        position = bisect.bisect_right(self._starts, char) - 1
        if position < 0:
            return None
        token = self._real[position]
        return token if self.offsets[token][1] > char else None

    def align(self, start: int, end: int) -> tuple[int, int] | None:
        first = self.token_at(start)
        last = self.token_at(end - 1)
        if first is None or last is None:
            return None
        token_start = self.offsets[first][0]
        if self.text[token_start:start].strip():
            return None  # the token begins inside another word: not a token boundary
        if self.offsets[last][1] != end:
            return None  # the last token runs past the term (e.g. merged with punctuation)
        if first > 0:
            # A lone space token right before the term (BPE could not merge it with the word)
            # belongs to it: the translation then gets the canonical " alternative" tokens.
            s_prev, e_prev = self.offsets[first - 1]
            if e_prev > s_prev and e_prev == token_start and self.text[s_prev:e_prev].strip(" \t") == "":
                first -= 1
        return first, last

    def covered_start(self, token: int) -> int:
        """Character where the text covered by ``token`` begins, leading whitespace included."""
        position = bisect.bisect_left(self._real, token)
        return self.offsets[self._real[position - 1]][1] if position > 0 else 0


# Abbreviated titles: the period after them does not end a sentence ("Mr. Holmes", "Dr. Watson").
ABBREVIATIONS = frozenset({"Mr", "Mrs", "Ms", "Dr", "St", "Jr", "Sr", "Prof", "Rev", "Capt", "Col", "Gen", "Lt",
                           "Sgt", "Messrs", "Mme", "Mlle", "Mt"})
_LAST_WORD_RE = re.compile(r"(\w+)\.$")


def is_sentence_start(text: str, char: int) -> bool:
    before = text[:char].rstrip(" \t")
    if not before:
        return True
    if before.endswith("."):
        last = _LAST_WORD_RE.search(before)
        return last is None or last.group(1) not in ABBREVIATIONS
    return before.endswith(("\n", "!", "?", '"', "“"))
