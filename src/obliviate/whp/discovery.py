"""Automatic discovery of anchored terms (beyond the paper, which asked GPT-4).

Candidates are word n-grams (1-3 words) of the target text. Each gets
- ``gain``: how much more likely the reinforced model finds it than the baseline,
  in context: mean over its occurrences of ``sum_tokens (log p_reinforced - log p_base)``;
- ``specificity``: ``log`` of its frequency ratio, target text vs a generic text
  (add-one smoothed), when a generic text is given;
- ``name_share``: how often it is written capitalised in mid-sentence (a proper noun);
and is ranked by ``gain + specificity_weight * min(specificity, max_specificity) + name_weight * name_share``.
Capping the specificity makes a term that (almost) never occurs in the generic text count
as specific however rare it is in the target: a spell named 5 times is as much an anchor
as a theme word used 30 times.

Text rules (``term_shape``, ``fragment_reason``, ``name_parts``) drop what is not a term:
possessives ("Vrouth's"), n-grams mixing a name with common words ("Vrouth Ziarloov find",
"Chapter 4"), capitalisation that only comes from a sentence start ("Hidden deep"),
title-cased common phrases ("Match of Drovault" next to "match of Drovault"), "X of Y"
titles around a name that stands on its own ("Return of Slath"). A person's full name
brings its parts (like the paper's "Harry", "Potter" and "Harry Potter"), and a full name
that extends a kept name counts even when rare ("Boujoa Fousseett" next to "Boujoa").

Generic alternatives come from the baseline's own predictions at the position where the
term begins (averaged over its occurrences): its most likely next words that are not
anchors, not function words and not the term itself. A term whose contexts yield none
(a spell: the baseline predicts only other spells) borrows the alternatives proposed most
often for terms of its kind (a one-word name gets names), marked ``alternatives_from:
"fallback"``. The result is a dictionary a person can edit (``obliviate whp anchors --out
anchors.json``).
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Mapping, Sequence

import torch

from obliviate.errors import UserError
from obliviate.whp.anchors import (
    ABBREVIATIONS,
    AnchorDict,
    TokenIndex,
    is_sentence_start,
)

log = logging.getLogger(__name__)

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


@dataclass
class DiscoveryConfig:
    top: int = 30                   # terms kept
    max_ngram: int = 3              # words per term at most
    min_count: int = 3              # occurrences in the target text at least
    # a full name that extends a kept one-word name ("Kremar Saelky" next to "Kremar") needs only
    # this many occurrences: full names are often written once and then shortened (tiny, recall at
    # k=48/96: 0.79/0.90 with min_count -> 0.875/0.96)
    name_min_count: int = 1
    n_alternatives: int = 3         # generic alternatives proposed per term
    # score = gain_weight * min(gain, max_gain) + specificity_weight * min(specificity, max_specificity)
    #         + name_weight * name_share + count_weight * log(count)
    # the gain is capped and halved: a baseline that memorised the target (WHP's premise) gains ~0
    # on its most frequent names ("Holmes", "Watson") and 1-3 nats on rare ones, which would push
    # the main characters out of the top (Sherlock run: hand-dictionary recall in the top 30
    # 0.16 -> 0.53 with these weights; tiny unchanged)
    gain_weight: float = 0.5
    max_gain: float = 1.0
    specificity_weight: float = 1.0
    # specificity counts up to this (nats; e^3 = 20x more frequent in the target than in the
    # generic text): beyond it, the add-one ratio only measures how frequent the term is, and
    # frequent theme words ("dark", "spell") would outrank rare names (tiny, strict recall of the
    # dictionary at k=48/96: 0.79/0.96 uncapped -> 0.875/0.96; docs/results/tiny/anchors.md)
    max_specificity: float = 3.0
    # names: share of a term's occurrences written capitalised in mid-sentence (a proper
    # noun), times this weight, is added to its score; the target's theme words ("spell",
    # "dark") are as absent from a small generic text as its names are, names are what WHP
    # must replace (tiny: recall of the dictionary at k=|dictionary| 0.34 -> 0.47)
    name_weight: float = 2.0
    # a little frequency back, after the specificity cap: the main characters are what matter most
    count_weight: float = 0.25
    # mean log-prob gain (nats) a term needs; slightly negative because a baseline that already
    # knows the target (WHP's premise) gains ~0 on names it memorised (tiny: recall@2k 0.60 -> 0.62)
    min_gain: float = -0.5
    min_specificity: float = 1.0    # with generic text: log frequency ratio a term and its content words need
    min_word_gain: float = 0.5      # without generic text: each content word of a multi-word term needs this gain
    # "X of Y" is one term only if it holds at least this share of Y's occurrences ("Caves of
    # Laempe": 12/12), else it is a title around a name that stands on its own ("Return of Slath": 4/18)
    min_cohesion: float = 0.5
    block_size: int = 512
    batch_size: int = 8
    candidate_tokens: int = 50      # base-model predictions examined per term for alternatives
    max_contexts: int = 32          # occurrences per term whose contexts propose alternatives


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


@dataclass
class DiscoveryResult:
    anchors: AnchorDict
    candidates: list[AnchorCandidate]   # the kept terms, best first (alternatives filled in)


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


def _content_words(term: str) -> list[str]:
    return [w for w in WORD_RE.findall(term) if w.lower() not in STOPWORDS]


# Function words allowed inside a term ("Cloak of Tasavoth", "Order of the Phoenix"); any other
# ("Quilla and Dorrik", "skyball with Dorrik") joins two terms rather than naming one.
CONNECTORS = frozenset({"of", "the"})


def _plausible(term: str) -> bool:
    """Not starting or ending with a function word, and no function word inside but a connector."""
    if any(w in ABBREVIATIONS for w in WORD_RE.findall(term)):
        return False  # "Mr", "Dr": titles, not terms (the name after them is)
    words = [w.lower() for w in WORD_RE.findall(term)]
    if not words or words[0] in STOPWORDS or words[-1] in STOPWORDS:
        return False
    if any(w in STOPWORDS and w not in CONNECTORS for w in words[1:-1]):
        return False
    return any(ch.isalpha() for ch in term)


# -- scoring with the two models ----------------------------------------------------------

@dataclass
class _Doc:
    ids: list[int]
    index: TokenIndex


def _encode(tokenizer, text: str) -> _Doc:
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoding["input_ids"])
    offsets = [tuple(o) for o in encoding["offset_mapping"]]
    if tokenizer.bos_token_id is not None:  # same framing as training
        ids, offsets = [tokenizer.bos_token_id] + ids, [(0, 0)] + offsets
    return _Doc(ids, TokenIndex(text, offsets))


def _blocks(docs: Sequence[_Doc], block_size: int) -> list[tuple[int, int]]:
    return [(d, start) for d, doc in enumerate(docs) for start in range(0, len(doc.ids), block_size)]


def _batched_logits(model, sequences: Sequence[Sequence[int]], pad_id: int):
    device = next(model.parameters()).device
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float().cpu()


@torch.inference_mode()
def token_logprob_gains(base_model, reinforced_model, docs: Sequence[_Doc], block_size: int, batch_size: int,
                        pad_id: int) -> list[torch.Tensor]:
    """Per document, per token: log p_reinforced(token) - log p_base(token) (NaN where undefined:
    the first token of every block, which has no context inside the block)."""
    gains = [torch.full((len(doc.ids),), float("nan")) for doc in docs]
    blocks = _blocks(docs, block_size)
    for start in range(0, len(blocks), batch_size):
        batch = blocks[start: start + batch_size]
        sequences = [docs[d].ids[s: s + block_size] for d, s in batch]
        base = torch.log_softmax(_batched_logits(base_model, sequences, pad_id), dim=-1)
        reinforced = torch.log_softmax(_batched_logits(reinforced_model, sequences, pad_id), dim=-1)
        for row, ((d, s), seq) in enumerate(zip(batch, sequences)):
            if len(seq) < 2:
                continue
            targets = torch.tensor(seq[1:]).unsqueeze(-1)
            lp_base = base[row, : len(seq) - 1].gather(-1, targets).squeeze(-1)
            lp_reinforced = reinforced[row, : len(seq) - 1].gather(-1, targets).squeeze(-1)
            gains[d][s + 1: s + len(seq)] = lp_reinforced - lp_base
    return gains


def _occurrence_tokens(doc: _Doc, start: int, end: int, block_size: int) -> tuple[int, int] | None:
    span = doc.index.align(start, end)
    if span is None:
        return None
    first, last = span
    if first // block_size != last // block_size or first % block_size == 0:
        return None  # straddles a block edge, or has no context in its block
    return span


# -- alternatives -------------------------------------------------------------------------

DETERMINERS = frozenset({"the", "a", "an", "his", "her", "their", "its", "my", "our", "your", "this", "that"})


def _greedy_next(base_model, tokenizer, ids: list[int]) -> int:
    return int(_batched_logits(base_model, [ids], 0)[0, -1].argmax())


def _extend_word(base_model, tokenizer, ids: list[int], max_pieces: int = 6) -> list[int]:
    """Append greedy continuation pieces (no leading space) until the word ends."""
    for _ in range(max_pieces):
        nxt = _greedy_next(base_model, tokenizer, ids)
        piece = tokenizer.decode([nxt])
        if not piece or not piece[0].isalpha():
            break
        ids = ids + [nxt]
    return ids


@torch.inference_mode()
def _complete_phrase(base_model, tokenizer, context: list[int], token: int) -> str:
    """The word ``token`` starts, completed greedily; after a determiner also the next word
    ("the" -> "the school"), since a generic stand-in for a name is often a noun phrase."""
    ids = _extend_word(base_model, tokenizer, list(context) + [token])
    if tokenizer.decode(ids[len(context):]).strip().lower() in DETERMINERS:
        nxt = _greedy_next(base_model, tokenizer, ids)
        piece = tokenizer.decode([nxt])
        if piece[:1].isspace() and piece.strip()[:1].isalpha():
            ids = _extend_word(base_model, tokenizer, ids + [nxt])
    return tokenizer.decode(ids[len(context):]).strip()


@torch.inference_mode()
def _shape_fits(term: str, words: Sequence[str]) -> bool:
    """A one-word capitalised term (a name) wants a capitalised word, not "the ..."; other terms
    (places, objects, lowercase words) also accept a determiner phrase ("the school")."""
    determiner_phrase = words[0].lower() in DETERMINERS and len(words) > 1
    if term[:1].isupper():
        capitalised = words[0][:1].isupper() and words[0].lower() not in DETERMINERS
        return capitalised or (" " in term and determiner_phrase)
    return words[0][:1].islower()


def _mid_sentence_first(docs: Sequence[_Doc], occ: Sequence[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Occurrences inside a sentence first: at a sentence start the base predicts how sentences
    begin ("The", "Question"), not what stands in for the term."""
    inside = [o for o in occ if not is_sentence_start(docs[o[0]].index.text, docs[o[0]].index.offsets[o[1]][0])]
    return inside if len(inside) >= 3 else list(occ)


def propose_alternatives(base_model, tokenizer, docs: Sequence[_Doc],
                         occurrences: dict[str, list[tuple[int, int, int]]], allowed_words: set[str], config: DiscoveryConfig,
                         common_words: frozenset[str] | set[str] = frozenset()) -> dict[str, list[str]]:
    """For each term: the base model's likeliest next words where the term begins (mean over its
    occurrences), completed into whole words, that are allowed words (seen whole in the generic
    text: no BPE fragments, no other target-specific word), fit the term's shape, and share no
    word with any anchored term."""
    block_size = config.block_size
    anchor_first_tokens = {docs[d].ids[first] for occ in occurrences.values() for d, first, _ in occ}
    anchor_words = {w.lower() for term in occurrences for w in WORD_RE.findall(term)}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    proposals: dict[str, list[str]] = {}
    for term, occ in occurrences.items():
        chosen = _mid_sentence_first(docs, occ)[: config.max_contexts]
        contexts = [docs[d].ids[(first // block_size) * block_size: first] for d, first, _ in chosen]
        contexts = [c for c in contexts if c]
        if not contexts:
            proposals[term] = []
            continue
        mean_probs = None
        for start in range(0, len(contexts), config.batch_size):
            chunk = contexts[start: start + config.batch_size]
            logits = _batched_logits(base_model, chunk, pad)
            last = torch.stack([logits[row, len(c) - 1] for row, c in enumerate(chunk)])
            probs = torch.softmax(last, dim=-1).sum(dim=0)
            mean_probs = probs if mean_probs is None else mean_probs + probs
        alternatives: list[str] = []
        for token in mean_probs.topk(min(config.candidate_tokens, mean_probs.numel())).indices.tolist():
            if token in anchor_first_tokens or token in tokenizer.all_special_ids:
                continue
            piece = tokenizer.decode([token]).strip()
            if not piece or not piece[0].isalpha():
                continue
            phrase = _complete_phrase(base_model, tokenizer, contexts[0], token)
            words = WORD_RE.findall(phrase)
            if not words or " ".join(words) != phrase or words[-1].lower() in STOPWORDS:
                continue
            if any(w not in allowed_words or w.lower() in anchor_words for w in words) or not _shape_fits(term, words):
                continue
            if term[:1].isupper() and words[0][:1].isupper() and words[0].lower() in common_words:
                continue  # "Well", "Poor": capitalised by a sentence start, not a name
            if phrase.lower() in (a.lower() for a in alternatives):
                continue
            alternatives.append(phrase)
            if len(alternatives) >= config.n_alternatives:
                break
        proposals[term] = alternatives
    return proposals



# -- text rules: what is a term -------------------------------------------------------------

POSSESSIVE_RE = re.compile(r"['’]s$")


def _capitalised(word: str) -> bool:
    return word[:1].isupper()


def term_shape(term: str) -> str:
    """``"name"`` when every content word is capitalised ("Caves of Laempe"), ``"lower"`` when
    every one is a lowercase word ("enchanted object"), else ``"mixed"`` ("Vrouth Ziarloov find",
    "Chapter 4"): an n-gram mixing a name with common words is a fragment, not a term."""
    words = _content_words(term)
    if words and all(_capitalised(w) for w in words):
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
        if all(w.lower() in common_words for w in _content_words(term)):
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
    return (len(words) > 1 and own is not None and all(_capitalised(w) for w in words)
            and own.article_share < 0.5)


def is_name_word(word: str, stats: Mapping[str, TermStats], common_words: set[str], with_generic: bool,
                 config: DiscoveryConfig) -> bool:
    """A capitalised word never written in lowercase and (with generic text) specific to the target."""
    own = stats.get(word)
    return (own is not None and _capitalised(word) and word.lower() not in common_words
            and word.lower() not in STOPWORDS
            and (not with_generic or own.specificity >= config.min_specificity))


def _eligible(term: str, stats: Mapping[str, TermStats], with_generic: bool, config: DiscoveryConfig,
              min_count: int) -> bool:
    own = stats[term]
    if own.count < min_count or not _plausible(term) or own.gain <= config.min_gain:
        return False
    if with_generic and own.specificity < config.min_specificity:
        return False
    if len(WORD_RE.findall(term)) > 1:
        # content words must belong to the target: all of them for a common-word phrase, one for a
        # name ("Prermiv Tower": a tower is generic, the name is not)
        words = _content_words(term)
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


def fallback_alternatives(term: str, proposals: Mapping[str, Sequence[str]], n: int) -> list[str]:
    """The alternatives proposed most often for other terms of the same kind (same shape and
    one word or several; else same shape; else any): a spell whose contexts only make the
    baseline predict other spells gets the names proposed for other one-word names."""
    def kind(t: str) -> tuple[str, bool]:
        return term_shape(t), " " in t

    for same in (lambda t: kind(t) == kind(term), lambda t: term_shape(t) == term_shape(term), lambda t: True):
        counts: Counter[str] = Counter()
        for other, alternatives in proposals.items():
            if other != term and same(other):
                counts.update(alternatives)
        if counts:
            return [a for a, _ in counts.most_common(n)]
    return []


# -- the whole discovery --------------------------------------------------------------------

def _after_article(text: str, start: int) -> bool:
    match = re.search(r"(\w+)\s+$", text[max(0, start - 12): start])
    return match is not None and match.group(1).lower() in ARTICLES


def discover_anchors(base_model, reinforced_model, tokenizer, target_texts: Sequence[str],
                     generic_texts: Sequence[str] = (), config: DiscoveryConfig | None = None) -> DiscoveryResult:
    config = config or DiscoveryConfig()
    target_texts = [t for t in target_texts if t and t.strip()]
    if not target_texts:
        raise UserError("the unlearning target is empty: no text to discover anchored terms in")
    if not getattr(tokenizer, "is_fast", False):
        raise UserError("anchored-term discovery needs a fast (Rust) tokenizer: it aligns words through token offsets")
    from obliviate.whp.pipeline import check_same_vocabulary

    check_same_vocabulary(base_model, reinforced_model, tokenizer)
    max_positions = getattr(base_model.config, "max_position_embeddings", config.block_size) or config.block_size
    config = DiscoveryConfig(**{**asdict(config), "block_size": min(config.block_size, max_positions)})
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    docs = [_encode(tokenizer, text) for text in target_texts]
    gains = token_logprob_gains(base_model, reinforced_model, docs, config.block_size, config.batch_size, pad)

    target_counts, target_words = count_ngrams(target_texts, config.max_ngram)
    generic_counts, generic_words = count_ngrams(generic_texts, config.max_ngram) if generic_texts else ({}, 0)
    with_generic = generic_words > 0

    def specificity(term: str) -> float:
        if not with_generic:
            return 0.0
        return (math.log((target_counts.get(term, 0) + 1) / (target_words + 1))
                - math.log((generic_counts.get(term, 0) + 1) / (generic_words + 1)))

    occurrence_gains: dict[str, list[float]] = defaultdict(list)
    occurrences: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    name_uses: dict[str, list[bool]] = defaultdict(list)
    article_uses: dict[str, list[bool]] = defaultdict(list)
    rare = min(config.min_count, config.name_min_count)
    for d, text in enumerate(target_texts):
        for term, start, end, n in word_ngrams(text, config.max_ngram):
            if n > 1 and target_counts[term] < config.min_count and (
                    target_counts[term] < rare or not all(_capitalised(w) for w in WORD_RE.findall(term))):
                continue  # only a full name may be rarer than min_count
            # a name: every content word capitalised, and not merely because a sentence starts
            name_uses[term].append(not is_sentence_start(text, start)
                                   and all(w[0].isupper() for w in _content_words(text[start:end])))
            article_uses[term].append(_after_article(text, start))
            span = _occurrence_tokens(docs[d], start, end, config.block_size)
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
        stats[term] = TermStats(term, target_counts[term], generic_counts.get(term, 0),
                                gain=sum(values) / len(values) if values else 0.0, specificity=specificity(term),
                                name_share=sum(uses) / len(uses), article_share=sum(article_uses[term]) / len(uses))
    # terms with no scored occurrence (all at block starts or misaligned) have no gain to rank by
    stats_scored = {t: s for t, s in stats.items() if t in occurrences or " " not in t}
    common_words = common_words_of(target_counts, generic_counts)
    ranked = [c for c in rank_terms(stats_scored, config, with_generic, common_words)
              if c.term in occurrences or c.why == "name part"]
    selected = ranked[: config.top]

    if with_generic:  # words of the generic text that are not themselves specific to the target
        allowed_words = {w for w in generic_counts if " " not in w and specificity(w) < config.min_specificity}
    else:
        allowed_words = {w for w in target_counts if " " not in w}
    proposals = propose_alternatives(base_model, tokenizer, docs, {c.term: occurrences[c.term] for c in selected},
                                     allowed_words, config, common_words)
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
    return DiscoveryResult({c.term: list(c.alternatives) for c in kept}, kept)
