"""Automatic discovery of anchored terms (beyond the paper, which asked GPT-4).

Candidates are word n-grams (1-3 words) of the target text. Each gets
- ``gain``: how much more likely the reinforced model finds it than the baseline,
  in context: mean over its occurrences of ``sum_tokens (log p_reinforced - log p_base)``;
- ``specificity``: ``log`` of its frequency ratio, target text vs a generic text
  (add-one smoothed), when a generic text is given;
and is ranked by ``gain + specificity_weight * specificity + name_weight * name_share``
(``name_share``: how often the term is written capitalised in mid-sentence). Generic alternatives
come from the baseline's own predictions at the position where the term begins
(averaged over its occurrences): its most likely next words that are not anchors,
not function words and not the term itself. The result is a dictionary a person
can edit (``obliviate whp anchors --out anchors.json``).
"""

from __future__ import annotations

import logging
import math
import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch

from obliviate.errors import UserError
from obliviate.whp.anchors import AnchorDict, TokenIndex, is_sentence_start

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


@dataclass
class DiscoveryConfig:
    top: int = 30                   # terms kept
    max_ngram: int = 3              # words per term at most
    min_count: int = 3              # occurrences in the target text at least
    n_alternatives: int = 3         # generic alternatives proposed per term
    specificity_weight: float = 1.0
    # names: share of a term's occurrences written capitalised in mid-sentence (a proper
    # noun), times this weight, is added to its score; the target's theme words ("spell",
    # "dark") are as absent from a small generic text as its names are, names are what WHP
    # must replace (tiny: recall of the dictionary at k=|dictionary| 0.34 -> 0.47;
    # docs/results/tiny/anchors.md)
    name_weight: float = 2.0
    # mean log-prob gain (nats) a term needs; slightly negative because a baseline that already
    # knows the target (WHP's premise) gains ~0 on names it memorised (tiny: recall@2k 0.60 -> 0.62)
    min_gain: float = -0.5
    min_specificity: float = 1.0    # with generic text: log frequency ratio a term and its content words need
    min_word_gain: float = 0.5      # without generic text: each content word of a multi-word term needs this gain
    block_size: int = 512
    batch_size: int = 8
    candidate_tokens: int = 50      # base-model predictions examined per term for alternatives
    max_contexts: int = 32          # occurrences per term whose contexts propose alternatives


@dataclass
class AnchorCandidate:
    term: str
    count: int
    generic_count: int
    gain: float
    specificity: float
    score: float
    alternatives: list[str] = field(default_factory=list)

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
                         occurrences: dict[str, list[tuple[int, int, int]]], allowed_words: set[str], config: DiscoveryConfig) -> dict[str, list[str]]:
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
            if phrase.lower() in (a.lower() for a in alternatives):
                continue
            alternatives.append(phrase)
            if len(alternatives) >= config.n_alternatives:
                break
        proposals[term] = alternatives
    return proposals


# -- the whole discovery --------------------------------------------------------------------

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
    for d, text in enumerate(target_texts):
        for term, start, end, n in word_ngrams(text, config.max_ngram):
            if n > 1 and target_counts[term] < config.min_count:
                continue
            # a name: every content word capitalised, and not merely because a sentence starts
            name_uses[term].append(not is_sentence_start(text, start)
                                   and all(w[0].isupper() for w in _content_words(text[start:end])))
            span = _occurrence_tokens(docs[d], start, end, config.block_size)
            if span is None:
                continue
            value = float(gains[d][span[0]: span[1] + 1].sum())
            if math.isnan(value):
                continue
            occurrence_gains[term].append(value)
            occurrences[term].append((d, span[0], span[1]))

    def mean_gain(term: str) -> float:
        values = occurrence_gains.get(term)
        return sum(values) / len(values) if values else 0.0

    candidates: list[AnchorCandidate] = []
    for term, values in occurrence_gains.items():
        if target_counts[term] < config.min_count or not _plausible(term):
            continue
        gain, spec = mean_gain(term), specificity(term)
        if gain <= config.min_gain or (with_generic and spec < config.min_specificity):
            continue
        if len(WORD_RE.findall(term)) > 1:  # every content word must itself belong to the target
            words = _content_words(term)
            if with_generic and any(specificity(w) < config.min_specificity for w in words):
                continue
            if not with_generic and any(mean_gain(w) < config.min_word_gain for w in words):
                continue
        uses = name_uses.get(term) or [False]
        name_share = sum(uses) / len(uses)
        score = gain + config.specificity_weight * spec + config.name_weight * name_share
        candidates.append(AnchorCandidate(term, target_counts[term], generic_counts.get(term, 0), round(gain, 4),
                                          round(spec, 4), round(score, 4)))
    candidates.sort(key=lambda c: (-c.score, c.term))

    selected: list[AnchorCandidate] = []
    for candidate in candidates:
        pattern = re.compile(rf"(?<!\w){re.escape(candidate.term)}(?!\w)")
        covering = [s for s in selected if pattern.search(s.term)]
        if covering and candidate.count - max(s.count for s in covering) < config.min_count:
            continue  # (almost) only ever occurs inside a longer kept term
        selected.append(candidate)
        if len(selected) >= config.top:
            break

    if with_generic:  # words of the generic text that are not themselves specific to the target
        allowed_words = {w for w in generic_counts if " " not in w and specificity(w) < config.min_specificity}
    else:
        allowed_words = {w for w in target_counts if " " not in w}
    proposals = propose_alternatives(base_model, tokenizer, docs, {c.term: occurrences[c.term] for c in selected},
                                     allowed_words, config)
    kept: list[AnchorCandidate] = []
    for candidate in selected:
        candidate.alternatives = proposals.get(candidate.term, [])
        if candidate.alternatives:
            kept.append(candidate)
        else:
            log.warning("no generic alternative found for %r: left out of the dictionary", candidate.term)
    return DiscoveryResult({c.term: list(c.alternatives) for c in kept}, kept)
