"""Ranking candidate anchored terms by their statistics (no model needed: ``TermStats`` holds the gains).

Each n-gram gets
- ``gain``: how much more likely the reinforced model finds it than the baseline,
  in context: mean over its occurrences of ``sum_tokens (log p_reinforced - log p_base)``;
- ``specificity``: ``log`` of its frequency ratio, target text vs a generic text
  (add-one smoothed), when a generic text is given;
- ``name_share``: how often it is written capitalised in mid-sentence (a proper noun);
and is ranked by ``gain_weight * min(gain, max_gain) + specificity_weight * min(specificity,
max_specificity) + name_weight * name_share + count_weight * log(count)`` (``DiscoveryConfig``).
Capping the specificity makes a term that (almost) never occurs in the generic text count
as specific however rare it is in the target: a spell named 5 times is as much an anchor
as a theme word used 30 times. A person's full name brings its parts (like the paper's
"Harry", "Potter" and "Harry Potter"), and a full name that extends a kept name counts even
when rare ("Boujoa Fousseett" next to "Boujoa").
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Mapping

from obliviate.whp.config import DiscoveryConfig
from obliviate.whp.terms import (
    WORD_RE,
    TermStats,
    content_words,
    fragment_reason,
    is_name_word,
    is_personal_name,
    plausible,
    term_shape,
)


@dataclass
class AnchorCandidate:
    term: str
    count: int
    generic_count: int
    gain: float
    specificity: float
    score: float
    alternatives: list[str] = field(default_factory=list)
    why: str = "ranked"             # "ranked", "name part" (of a kept full name), "name extension"
    alternatives_from: str = "context"   # "context" (the term's own contexts) or "fallback"

    def to_dict(self) -> dict:
        return asdict(self)


def _eligible(term: str, stats: Mapping[str, TermStats], with_generic: bool, config: DiscoveryConfig,
              min_count: int) -> bool:
    own = stats[term]
    if own.count < min_count or not plausible(term) or own.gain <= config.min_gain:
        return False
    if with_generic and own.specificity < config.min_specificity:
        return False
    if len(WORD_RE.findall(term)) > 1:
        # content words must belong to the target: all of them for a common-word phrase, one for a
        # name ("Prermiv Tower": a tower is generic, the name is not)
        words = content_words(term)
        if with_generic:
            specific = [stats[w].specificity >= config.min_specificity for w in words]
        else:
            specific = [stats[w].gain >= config.min_word_gain for w in words]
        if not (any(specific) if term_shape(term) == "name" else all(specific)):
            return False
    return True


def term_score(stats: TermStats, config: DiscoveryConfig) -> float:
    return (config.gain_weight * min(stats.gain, config.max_gain)
            + config.specificity_weight * min(stats.specificity, config.max_specificity)
            + config.name_weight * stats.name_share + config.count_weight * math.log(max(stats.count, 1)))


def rank_terms(stats: Mapping[str, TermStats], config: DiscoveryConfig, with_generic: bool,
               common_words: set[str]) -> list[AnchorCandidate]:
    """Every term worth proposing, best first (no model needed: ``stats`` holds the gains).

    1. eligible n-grams (count, gain, specificity) that are not fragments (``fragment_reason``);
    2. full names that extend a kept one-word name, even rare ("Kremar Saelky" next to "Kremar");
    3. the name words of kept full names ("Baisse", "Touley" of "Baisse Touley"), even when they
       never stand alone;
    4. any other term that (almost) only occurs inside a longer kept term is dropped ("Caves"
       inside "Caves of Laempe").
    """
    def fragment(term: str) -> bool:
        return fragment_reason(term, stats, common_words, config) is not None

    def name_word(word: str) -> bool:
        return is_name_word(word, stats, common_words, with_generic, config)

    why = {t: "ranked" for t in stats if _eligible(t, stats, with_generic, config, config.min_count)
           and not fragment(t)}
    singles = {t for t in why if " " not in t}
    for term in stats:
        if term in why or not is_personal_name(term, stats):
            continue
        words = WORD_RE.findall(term)
        if (all(name_word(w) for w in words) and any(w in singles for w in words)
                and _eligible(term, stats, with_generic, config, config.name_min_count) and not fragment(term)):
            why[term] = "name extension"
    parts: set[str] = set()
    for term in list(why):
        if is_personal_name(term, stats):
            for word in WORD_RE.findall(term):
                if name_word(word):
                    parts.add(word)
                    why.setdefault(word, "name part")

    kept: list[AnchorCandidate] = []
    for term in sorted(why, key=lambda t: (-term_score(stats[t], config), t)):
        own = stats[term]
        if term not in parts:
            pattern = re.compile(rf"(?<!\w){re.escape(term)}(?!\w)")
            covering = [stats[t].count for t in why if t != term and pattern.search(t)]
            if covering and own.count - max(covering) < config.min_count:
                continue  # (almost) only ever occurs inside a longer kept term
        kept.append(AnchorCandidate(term, own.count, own.generic_count, round(own.gain, 4),
                                    round(own.specificity, 4), round(term_score(own, config), 4), why=why[term]))
    return kept
