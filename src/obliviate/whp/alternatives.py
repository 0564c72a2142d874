"""Generic alternatives for anchored terms, from the baseline's own predictions.

At the position where a term begins (averaged over its occurrences) the baseline's most likely
next words that are not anchors, not function words and not the term itself stand in for it.
A term whose contexts yield none (a spell: the baseline predicts only other spells) borrows the
alternatives proposed most often for terms of its kind (a one-word name gets names), marked
``alternatives_from: "fallback"`` by ``obliviate.whp.discovery``.
"""

from __future__ import annotations

from collections import Counter
from typing import Mapping, Sequence

import torch

from obliviate.whp.anchors import is_sentence_start
from obliviate.whp.config import DiscoveryConfig
from obliviate.whp.gains import EncodedDoc, batched_logits
from obliviate.whp.terms import STOPWORDS, WORD_RE, term_shape

DETERMINERS = frozenset({"the", "a", "an", "his", "her", "their", "its", "my", "our", "your", "this", "that"})


def _greedy_next(base_model, tokenizer, ids: list[int]) -> int:
    return int(batched_logits(base_model, [ids], 0)[0, -1].argmax())


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


def _shape_fits(term: str, words: Sequence[str]) -> bool:
    """A one-word capitalised term (a name) wants a capitalised word, not "the ..."; other terms
    (places, objects, lowercase words) also accept a determiner phrase ("the school")."""
    determiner_phrase = words[0].lower() in DETERMINERS and len(words) > 1
    if term[:1].isupper():
        capitalised = words[0][:1].isupper() and words[0].lower() not in DETERMINERS
        return capitalised or (" " in term and determiner_phrase)
    return words[0][:1].islower()


def _mid_sentence_first(docs: Sequence[EncodedDoc],
                        occ: Sequence[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Occurrences inside a sentence first: at a sentence start the base predicts how sentences
    begin ("The", "Question"), not what stands in for the term."""
    inside = [o for o in occ if not is_sentence_start(docs[o[0]].index.text, docs[o[0]].index.offsets[o[1]][0])]
    return inside if len(inside) >= 3 else list(occ)


def propose_alternatives(base_model, tokenizer, docs: Sequence[EncodedDoc],
                         occurrences: dict[str, list[tuple[int, int, int]]], allowed_words: set[str],
                         config: DiscoveryConfig, common_words: frozenset[str] | set[str] = frozenset()) -> dict[str, list[str]]:
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
            logits = batched_logits(base_model, chunk, pad)
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
