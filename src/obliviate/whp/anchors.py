"""Finding anchored terms in text on token boundaries, and sentence starts.

A dictionary maps each idiosyncratic term of the unlearning target to generic
alternatives: ``{"Kellinmoor Academy": ["the academy", "the school"], ...}``; loading and
validating one is the world's job (``obliviate.world.anchors``, re-exported here).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Sequence

from obliviate.errors import UserError
from obliviate.world.anchors import AnchorDict, load_anchors, validate_anchors

__all__ = ["ABBREVIATIONS", "AnchorDict", "AnchorMatcher", "Occurrence", "TokenIndex", "is_sentence_start",
           "load_anchors", "validate_anchors"]


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
