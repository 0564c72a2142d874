"""Automatic discovery of anchored terms (beyond the paper, which asked GPT-4).

``discover_anchors`` runs the steps, each in its own module:

1. candidates: word n-grams (1-3 words) of the target text and the text rules that drop
   fragments (``obliviate.whp.terms``);
2. evidence: the reinforced model's log-prob gain over the baseline on each occurrence
   (``obliviate.whp.gains``), frequencies in the target and a generic text, and how often a
   term is written as a name (collected here into ``TermStats``);
3. ranking by gain, specificity and name share (``obliviate.whp.ranking``);
4. generic alternatives from the baseline's own predictions, borrowed from terms of the same
   kind when a term's contexts yield none (``obliviate.whp.alternatives``).

The result is a dictionary a person can edit (``obliviate whp anchors --out anchors.json``).
``target_only_terms`` and ``with_discovered_terms`` apply discovery to a given dictionary
(``WHPConfig.suppress_target_terms`` and ``discover_extra_anchors``).
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Sequence

import torch

from obliviate.errors import UserError
from obliviate.whp.alternatives import fallback_alternatives, propose_alternatives
from obliviate.whp.anchors import AnchorDict, is_sentence_start
from obliviate.whp.config import DiscoveryConfig
from obliviate.whp.gains import EncodedDoc, encode_document, occurrence_tokens, token_logprob_gains
from obliviate.whp.ranking import AnchorCandidate, rank_terms
from obliviate.whp.reinforced import check_same_vocabulary
from obliviate.whp.terms import (
    WORD_RE,
    TermStats,
    after_article,
    capitalised,
    common_words_of,
    content_words,
    count_ngrams,
    word_ngrams,
)

log = logging.getLogger(__name__)

Occurrences = dict[str, list[tuple[int, int, int]]]   # term -> (document, first token, last token) per occurrence


@dataclass
class DiscoveryResult:
    anchors: AnchorDict
    candidates: list[AnchorCandidate]   # the kept terms, best first (alternatives filled in)


@dataclass
class Frequencies:
    """N-gram counts of the target and the generic text (``words``: single-word n-grams)."""

    target: dict[str, int]
    target_words: int
    generic: dict[str, int]
    generic_words: int

    @classmethod
    def count(cls, target_texts: Sequence[str], generic_texts: Sequence[str], max_n: int) -> Frequencies:
        target, target_words = count_ngrams(target_texts, max_n)
        generic, generic_words = count_ngrams(generic_texts, max_n) if generic_texts else ({}, 0)
        return cls(target, target_words, generic, generic_words)

    @property
    def with_generic(self) -> bool:
        return self.generic_words > 0

    def specificity(self, term: str) -> float:
        """Log frequency ratio, target vs generic text (add-one smoothed); 0 without generic text."""
        if not self.with_generic:
            return 0.0
        return (math.log((self.target.get(term, 0) + 1) / (self.target_words + 1))
                - math.log((self.generic.get(term, 0) + 1) / (self.generic_words + 1)))


# -- the steps ------------------------------------------------------------------------------

def checked_config(base_model, reinforced_model, tokenizer, config: DiscoveryConfig | None) -> DiscoveryConfig:
    """UserError when discovery cannot run with these models; the config with ``block_size``
    capped at the model's positions."""
    config = config or DiscoveryConfig()
    if not getattr(tokenizer, "is_fast", False):
        raise UserError("anchored-term discovery needs a fast (Rust) tokenizer: it aligns words through token offsets")
    check_same_vocabulary(base_model, reinforced_model, tokenizer)
    max_positions = getattr(base_model.config, "max_position_embeddings", config.block_size) or config.block_size
    return DiscoveryConfig(**{**asdict(config), "block_size": min(config.block_size, max_positions)})


def term_statistics(target_texts: Sequence[str], docs: Sequence[EncodedDoc], gains: Sequence[torch.Tensor],
                    frequencies: Frequencies, config: DiscoveryConfig) -> tuple[dict[str, TermStats], Occurrences]:
    """``TermStats`` of every n-gram of the target (multi-word ones need ``min_count`` occurrences,
    full names only ``name_min_count``), and the token spans of its scored occurrences."""
    target_counts = frequencies.target
    occurrence_gains: dict[str, list[float]] = defaultdict(list)
    occurrences: Occurrences = defaultdict(list)
    name_uses: dict[str, list[bool]] = defaultdict(list)
    article_uses: dict[str, list[bool]] = defaultdict(list)
    rare = min(config.min_count, config.name_min_count)
    for d, text in enumerate(target_texts):
        for term, start, end, n in word_ngrams(text, config.max_ngram):
            if n > 1 and target_counts[term] < config.min_count and (
                    target_counts[term] < rare or not all(capitalised(w) for w in WORD_RE.findall(term))):
                continue  # only a full name may be rarer than min_count
            # a name: every content word capitalised, and not merely because a sentence starts
            name_uses[term].append(not is_sentence_start(text, start)
                                   and all(w[0].isupper() for w in content_words(text[start:end])))
            article_uses[term].append(after_article(text, start))
            span = occurrence_tokens(docs[d], start, end, config.block_size)
            if span is None:
                continue
            value = float(gains[d][span[0]: span[1] + 1].sum())
            if math.isnan(value):
                continue
            occurrence_gains[term].append(value)
            occurrences[term].append((d, span[0], span[1]))

    stats: dict[str, TermStats] = {}
    for term, uses in name_uses.items():
        values = occurrence_gains.get(term, [])
        stats[term] = TermStats(term, target_counts[term], frequencies.generic.get(term, 0),
                                gain=sum(values) / len(values) if values else 0.0,
                                specificity=frequencies.specificity(term), name_share=sum(uses) / len(uses),
                                article_share=sum(article_uses[term]) / len(uses))
    return stats, occurrences


def select_terms(stats: dict[str, TermStats], occurrences: Occurrences, with_generic: bool, common_words: set[str],
                 config: DiscoveryConfig) -> list[AnchorCandidate]:
    """The top ``config.top`` ranked terms that have a scored occurrence (or are name parts)."""
    # terms with no scored occurrence (all at block starts or misaligned) have no gain to rank by
    stats_scored = {t: s for t, s in stats.items() if t in occurrences or " " not in t}
    ranked = [c for c in rank_terms(stats_scored, config, with_generic, common_words)
              if c.term in occurrences or c.why == "name part"]
    return ranked[: config.top]


def allowed_alternative_words(frequencies: Frequencies, config: DiscoveryConfig) -> set[str]:
    """Words an alternative may use: with generic text, its words that are not themselves specific
    to the target; without, the target's own words."""
    if frequencies.with_generic:
        return {w for w in frequencies.generic if " " not in w and frequencies.specificity(w) < config.min_specificity}
    return {w for w in frequencies.target if " " not in w}


def attach_alternatives(selected: Sequence[AnchorCandidate], proposals: dict[str, list[str]],
                        config: DiscoveryConfig) -> list[AnchorCandidate]:
    """Each candidate with its proposed alternatives (else borrowed ones: ``alternatives_from``
    ``"fallback"``); candidates left with none are dropped."""
    kept: list[AnchorCandidate] = []
    for candidate in selected:
        candidate.alternatives = proposals.get(candidate.term, [])
        if not candidate.alternatives:
            candidate.alternatives = fallback_alternatives(candidate.term, proposals, config.n_alternatives)
            candidate.alternatives_from = "fallback"
            log.info("no generic alternative in the contexts of %r: borrowed %s", candidate.term, candidate.alternatives)
        if candidate.alternatives:
            kept.append(candidate)
        else:
            log.warning("no generic alternative found for %r: left out of the dictionary", candidate.term)
    return kept


# -- the whole discovery --------------------------------------------------------------------

def discover_anchors(base_model, reinforced_model, tokenizer, target_texts: Sequence[str],
                     generic_texts: Sequence[str] = (), config: DiscoveryConfig | None = None) -> DiscoveryResult:
    target_texts = [t for t in target_texts if t and t.strip()]
    if not target_texts:
        raise UserError("the unlearning target is empty: no text to discover anchored terms in")
    config = checked_config(base_model, reinforced_model, tokenizer, config)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    docs = [encode_document(tokenizer, text) for text in target_texts]
    gains = token_logprob_gains(base_model, reinforced_model, docs, config.block_size, config.batch_size, pad)
    frequencies = Frequencies.count(target_texts, generic_texts, config.max_ngram)
    stats, occurrences = term_statistics(target_texts, docs, gains, frequencies, config)
    common_words = common_words_of(frequencies.target, frequencies.generic)
    selected = select_terms(stats, occurrences, frequencies.with_generic, common_words, config)

    proposals = propose_alternatives(base_model, tokenizer, docs, {c.term: occurrences[c.term] for c in selected},
                                     allowed_alternative_words(frequencies, config), config, common_words)
    kept = attach_alternatives(selected, proposals, config)
    return DiscoveryResult({c.term: list(c.alternatives) for c in kept}, kept)


# -- discovery applied to a given dictionary ------------------------------------------------

def with_discovered_terms(anchors: AnchorDict, discovered: AnchorDict, count: int) -> tuple[AnchorDict, AnchorDict]:
    """``anchors`` plus the first ``count`` discovered terms it lacks (its own alternatives win).
    Returns (merged dictionary, the added terms)."""
    added = {term: list(alts) for term, alts in list(discovered.items())[:count] if term not in anchors}
    return {**anchors, **added}, added


def target_only_terms(model, reinforced, tokenizer, texts, generic_texts, anchors: AnchorDict, top: int,
                      block_size: int = 512) -> list[str]:
    """The terms among discovery's top ``top`` that the dictionary lacks and the generic text never
    uses (``generic_count`` 0): what ``suppress_target_terms`` pushes down with the anchors."""
    found = discover_anchors(model, reinforced, tokenizer, texts, generic_texts,
                             DiscoveryConfig(top=top, block_size=block_size))
    return [c.term for c in found.candidates if c.term not in anchors and c.generic_count == 0]
