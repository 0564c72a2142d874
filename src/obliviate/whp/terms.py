"""Candidate anchored terms: word n-grams of the target text, and the text rules that tell a term
from a fragment (no model needed; the first step of ``obliviate.whp.discovery``).

Candidates are word n-grams (1-3 words). Text rules (``term_shape``, ``fragment_reason``,
``is_personal_name``, ``is_name_word``) drop what is not a term: possessives ("Vrouth's"),
n-grams mixing a name with common words ("Vrouth Ziarloov find", "Chapter 4"), capitalisation
that only comes from a sentence start ("Hidden deep"), title-cased common phrases ("Match of
Drovault" next to "match of Drovault"), "X of Y" titles around a name that stands on its own
("Return of Slath"). ``TermStats`` is what the texts (and the two models) say about one n-gram.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Mapping, Sequence

from obliviate.whp.anchors import ABBREVIATIONS
from obliviate.whp.config import DiscoveryConfig

WORD_RE = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")

STOPWORDS = frozenset(
    "a an the and or but if of to in on at by for with from as is was were be been being are am it its "
    "he she him her his hers they them their theirs we us our ours you your yours i me my mine this that "
    "these those there here then than so not no nor do does did done have has had will would can could "
    "shall should may might must into onto over under up down out off about after before again all any "
    "each few more most other some such only own same too very just also what which who whom whose when "
    "where why how said says one two yes himself herself itself themselves myself yourself ourselves".split()
)

ARTICLES = frozenset({"the", "a", "an"})

# Function words allowed inside a term ("Cloak of Tasavoth", "Order of the Phoenix"); any other
# ("Quilla and Dorrik", "skyball with Dorrik") joins two terms rather than naming one.
CONNECTORS = frozenset({"of", "the"})

POSSESSIVE_RE = re.compile(r"['’]s$")


@dataclass
class TermStats:
    """What the target and generic texts (and the two models) say about one n-gram."""

    term: str
    count: int                      # occurrences in the target
    generic_count: int = 0          # occurrences in the generic text
    gain: float = 0.0               # mean log-prob gain, reinforced vs base, over aligned occurrences
    specificity: float = 0.0        # log frequency ratio target / generic (0 without generic text)
    name_share: float = 0.0         # share of occurrences capitalised in mid-sentence
    article_share: float = 0.0      # share of occurrences right after "the"/"a"/"an"


# -- n-grams ------------------------------------------------------------------------------

def word_ngrams(text: str, max_n: int) -> list[tuple[str, int, int, int]]:
    """``(term, start, end, n_words)`` for every run of 1..max_n words separated by single spaces."""
    words = [(m.start(), m.end()) for m in WORD_RE.finditer(text)]
    grams = []
    for i in range(len(words)):
        for n in range(1, max_n + 1):
            j = i + n - 1
            if j >= len(words):
                break
            if n > 1 and text[words[j - 1][1]: words[j][0]] != " ":
                break  # punctuation or a line break between the words: not one term
            start, end = words[i][0], words[j][1]
            grams.append((text[start:end], start, end, n))
    return grams


def count_ngrams(texts: Sequence[str], max_n: int) -> tuple[dict[str, int], int]:
    counts: dict[str, int] = defaultdict(int)
    n_words = 0
    for text in texts:
        for term, _s, _e, n in word_ngrams(text, max_n):
            counts[term] += 1
            n_words += n == 1
    return counts, n_words


def content_words(term: str) -> list[str]:
    return [w for w in WORD_RE.findall(term) if w.lower() not in STOPWORDS]


def capitalised(word: str) -> bool:
    return word[:1].isupper()


def plausible(term: str) -> bool:
    """Not starting or ending with a function word, and no function word inside but a connector."""
    if any(w in ABBREVIATIONS for w in WORD_RE.findall(term)):
        return False  # "Mr", "Dr": titles, not terms (the name after them is)
    words = [w.lower() for w in WORD_RE.findall(term)]
    if not words or words[0] in STOPWORDS or words[-1] in STOPWORDS:
        return False
    if any(w in STOPWORDS and w not in CONNECTORS for w in words[1:-1]):
        return False
    return any(ch.isalpha() for ch in term)


def after_article(text: str, start: int) -> bool:
    """The word before ``start`` is "the", "a" or "an"."""
    match = re.search(r"(\w+)\s+$", text[max(0, start - 12): start])
    return match is not None and match.group(1).lower() in ARTICLES


# -- text rules: what is a term -------------------------------------------------------------

def term_shape(term: str) -> str:
    """``"name"`` when every content word is capitalised ("Caves of Laempe"), ``"lower"`` when
    every one is a lowercase word ("enchanted object"), else ``"mixed"`` ("Vrouth Ziarloov find",
    "Chapter 4"): an n-gram mixing a name with common words is a fragment, not a term."""
    words = content_words(term)
    if words and all(capitalised(w) for w in words):
        return "name"
    if words and all(w[:1].islower() for w in words):
        return "lower"
    return "mixed"


def common_words_of(*counts: Mapping[str, int]) -> set[str]:
    """Words written in lowercase somewhere in these texts (lowercased): a capitalised word
    whose lowercase form is in use ("Deep"/"deep", "Street"/"street") is a common word."""
    return {w.lower() for c in counts for w in c if " " not in w and w[:1].islower()}


def fragment_reason(term: str, stats: Mapping[str, TermStats], common_words: set[str],
                    config: DiscoveryConfig) -> str | None:
    """Why ``term`` is a fragment rather than a term, or None when it is a term."""
    words = WORD_RE.findall(term)
    if any(POSSESSIVE_RE.search(w) for w in words):
        return "possessive"  # the matcher finds "Vrouth" inside "Vrouth's": the plain form is the term
    shape = term_shape(term)
    if shape == "mixed":
        return "mixes capitalised and common words"
    own = stats[term]
    if shape == "name" and own.name_share == 0 and (len(words) > 1 or term.lower() in common_words):
        return "capitalised only at sentence starts"
    if shape == "name":
        if all(w.lower() in common_words for w in content_words(term)):
            return "only common words, title-cased"  # "The First Lesson", "Return": a title, not a name
        variant = " ".join(w.lower() if w.lower() in common_words else w for w in words)
        if variant != term and variant in stats and stats[variant].count >= own.count:
            return f"title-cased form of {variant!r}"
    if len(words) > 2 and any(w in CONNECTORS for w in words[1:-1]):
        head = words[-1]
        if head in stats and own.count < config.min_cohesion * stats[head].count:
            return f"a title around {head!r}, which stands on its own"
    return None


def is_personal_name(term: str, stats: Mapping[str, TermStats]) -> bool:
    """Two or more capitalised words, no connector, not usually after an article: "Baisse
    Touley", "Sherlock Holmes" (not "the Virva Crown", not "Caves of Laempe")."""
    words = WORD_RE.findall(term)
    own = stats.get(term)
    return (len(words) > 1 and own is not None and all(capitalised(w) for w in words)
            and own.article_share < 0.5)


def is_name_word(word: str, stats: Mapping[str, TermStats], common_words: set[str], with_generic: bool,
                 config: DiscoveryConfig) -> bool:
    """A capitalised word never written in lowercase and (with generic text) specific to the target."""
    own = stats.get(word)
    return (own is not None and capitalised(word) and word.lower() not in common_words
            and word.lower() not in STOPWORDS
            and (not with_generic or own.specificity >= config.min_specificity))
