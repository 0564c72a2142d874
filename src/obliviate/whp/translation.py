"""Generic translation of target text, block by block, with WHP's consistency rules.

Each document is tokenized once (fast tokenizer, offsets) and cut into blocks of at
most ``block_size`` tokens, on both the original and the translated side. Inside a
block every anchored term is replaced by ONE alternative, drawn deterministically
from (seed, document, block). The translated ids are assembled piece by piece:
tokens outside anchors are copied unchanged, so positions map exactly; an anchor's
tokens are replaced by the tokenization of its alternative.

Which original positions are trained (position k predicts original token k+1):
- not inside an anchor: an anchor's inner positions have no counterpart in the
  translation; the anchor's LAST token maps to the translation's LAST token, so the
  prediction of what follows the anchor is trained;
- the prediction of an anchor that already occurred in the block: the paper leaves
  it untrained ("Harry ... my name is Harry" must not be taught to continue with
  the translation; the default). With ``train_repeated_anchor_predictions=True`` it
  is trained, with the anchor's own first token forbidden there as well as the
  translation's (see below): the label is then neither the anchor nor its
  translation. Left untrained, and without WHPConfig's unlikelihood term, these
  positions (half of the anchor occurrences in a 512-token block of the tiny saga)
  are where the fine-tuned model goes on predicting the anchor ("They were called"
  -> "cindermoths");
- not the block's last position (its next token lies outside the block).
At every position from an anchor's first occurrence on, the first token of the
translation used for it (its first non-whitespace token) is forbidden in the
generic label, unless the original
block itself uses that token outside anchors (then it is ordinary vocabulary of the
text, e.g. "the" of "the school", and forbidding it would corrupt labels).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from obliviate.errors import UserError
from obliviate.whp.anchors import AnchorMatcher, Occurrence, TokenIndex, is_sentence_start


@dataclass(frozen=True)
class Replacement:
    term: str
    alternative: str
    original_span: tuple[int, int]     # first and last original position (inclusive)
    translated_span: tuple[int, int]   # first and last translated position (inclusive)
    repeated: bool                     # the term already occurred earlier in the block


@dataclass
class TranslatedBlock:
    original_ids: list[int]
    translated_ids: list[int]
    position_map: list[int]            # original position -> translated position standing for it; -1: none
    train_mask: list[bool]             # original positions whose next-token prediction gets a generic label
    forbidden: list[list[int]]         # per original position: token ids forbidden in the generic label
    replacements: list[Replacement] = field(default_factory=list)
    doc_index: int = 0
    block_index: int = 0

    @property
    def n_trained(self) -> int:
        return sum(self.train_mask)


@dataclass
class TranslationStats:
    documents: int = 0
    blocks: int = 0
    tokens: int = 0
    translated: int = 0                # anchor occurrences replaced
    repeated: int = 0                  # of which 2nd or later occurrences of their term in the block
    unaligned: int = 0                 # occurrences skipped: not on token boundaries
    per_term: dict[str, int] = field(default_factory=dict)


class _BlockBuilder:
    def __init__(self, seed: int, doc_index: int, block_index: int, alternatives: Mapping[str, Sequence[str]],
                 train_repeated: bool = False):
        # String seeds are hashed with SHA-512 by `random`: stable across runs and platforms.
        self.rng = random.Random(f"whp:{seed}:{doc_index}:{block_index}")
        self.alternatives = alternatives
        self.doc_index = doc_index
        self.block_index = block_index
        self.original: list[int] = []
        self.translated: list[int] = []
        self.position_map: list[int] = []
        self.train_mask: list[bool] = []
        self.anchor_positions: set[int] = set()
        self.chosen: dict[str, str] = {}
        self.used_first_tokens: list[tuple[int, int]] = []   # (from original position, token id)
        self.train_repeated = train_repeated
        self.own_anchor_banned: dict[int, set[int]] = {}    # position predicting a repeated anchor -> its tokens
        self.replacements: list[Replacement] = []

    def alternative_for(self, term: str) -> str:
        if term not in self.chosen:
            options = list(self.alternatives[term])
            taken = set(self.chosen.values())
            fresh = [a for a in options if a not in taken] or options  # avoid two terms sharing a translation
            self.chosen[term] = self.rng.choice(fresh)
        return self.chosen[term]

    def fits(self, n_original: int, n_translated: int, block_size: int) -> bool:
        return len(self.original) + n_original <= block_size and len(self.translated) + n_translated <= block_size

    def add_token(self, token_id: int) -> None:
        self.position_map.append(len(self.translated))
        self.original.append(token_id)
        self.translated.append(token_id)
        self.train_mask.append(True)

    def add_anchor(self, term: str, alternative: str, original_ids: Sequence[int], replacement_ids: Sequence[int],
                   distinctive_token: int, anchor_first_token: int | None = None) -> None:
        start, start_t = len(self.original), len(self.translated)
        repeated = any(r.term == term for r in self.replacements)
        if repeated and start > 0:
            if self.train_repeated:
                # trained, but the label may be neither the anchor nor (forbidden below) its translation
                own = original_ids[0] if anchor_first_token is None else anchor_first_token
                self.own_anchor_banned.setdefault(start - 1, set()).add(own)
            else:
                self.train_mask[start - 1] = False  # the paper: never teach the translation where the anchor repeats
        for offset, token_id in enumerate(original_ids):
            last = offset == len(original_ids) - 1
            self.original.append(token_id)
            self.position_map.append(start_t + len(replacement_ids) - 1 if last else -1)
            self.train_mask.append(last)
            self.anchor_positions.add(start + offset)
        self.translated.extend(replacement_ids)
        if not repeated:
            self.used_first_tokens.append((start, distinctive_token))
        self.replacements.append(Replacement(
            term, alternative, (start, start + len(original_ids) - 1),
            (start_t, start_t + len(replacement_ids) - 1), repeated))

    def build(self, spare_text_tokens: bool) -> TranslatedBlock:
        n = len(self.original)
        train_mask = list(self.train_mask)
        train_mask[-1] = False
        text_tokens = {t for k, t in enumerate(self.original) if k not in self.anchor_positions}
        forbidden: list[list[int]] = []
        for position in range(n):
            banned = {t for since, t in self.used_first_tokens if since <= position}
            if spare_text_tokens:
                banned -= text_tokens
            # the anchor's own token is banned even when the text uses it elsewhere: here it would be the anchor
            banned |= self.own_anchor_banned.get(position, set())
            forbidden.append(sorted(banned))
        return TranslatedBlock(self.original, self.translated, self.position_map, train_mask, forbidden,
                               self.replacements, self.doc_index, self.block_index)


def _tokenize_piece(tokenizer, piece: str, left_context: str) -> list[int]:
    """Token ids of ``piece`` as they appear after ``left_context`` (keeps leading-space forms right)."""
    if left_context:
        left = tokenizer(left_context, add_special_tokens=False)["input_ids"]
        full = tokenizer(left_context + piece, add_special_tokens=False)["input_ids"]
        if full[: len(left)] == left and len(full) > len(left):
            return list(full[len(left):])
    return list(tokenizer(piece, add_special_tokens=False)["input_ids"])


def _first_word_token(tokenizer, token_ids: Sequence[int]) -> int:
    """The translation's first token that is not bare whitespace: the one later positions must not predict."""
    for token_id in token_ids:
        if tokenizer.decode([token_id]).strip():
            return token_id
    return token_ids[0]


def _replacement_ids(tokenizer, text: str, index: TokenIndex, occurrence: Occurrence, alternative: str) -> list[int]:
    covered = index.covered_start(occurrence.first_token)
    prefix = text[covered: occurrence.start]  # whitespace the anchor's first token carries
    if is_sentence_start(text, occurrence.start) and alternative[:1].islower():
        alternative = alternative[0].upper() + alternative[1:]
    return _tokenize_piece(tokenizer, prefix + alternative, text[max(0, covered - 24): covered])


def encode_framed(tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids and character offsets of ``text`` in the framing of training (obliviate.train.data):
    <bos> document <eos>; the special tokens have empty offsets."""
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(encoding["input_ids"])
    offsets = [tuple(o) for o in encoding["offset_mapping"]]
    if tokenizer.bos_token_id is not None:
        ids, offsets = [tokenizer.bos_token_id] + ids, [(0, 0)] + offsets
    if tokenizer.eos_token_id is not None:
        ids, offsets = ids + [tokenizer.eos_token_id], offsets + [(len(text), len(text))]
    return ids, offsets


def translate_document(
    text: str,
    tokenizer,
    anchors: Mapping[str, Sequence[str]],
    block_size: int = 512,
    seed: int = 0,
    doc_index: int = 0,
    matcher: AnchorMatcher | None = None,
    spare_text_tokens: bool = True,
    stats: TranslationStats | None = None,
    train_repeated_anchor_predictions: bool = False,
) -> list[TranslatedBlock]:
    """Cut one document into translated blocks (see the module docstring for the rules;
    ``train_repeated_anchor_predictions=False``, the default, is the paper's rule for repeated anchors)."""
    if block_size < 2:
        raise UserError(f"block_size must be at least 2 tokens, got {block_size}")
    if not getattr(tokenizer, "is_fast", False):
        raise UserError("WHP needs a fast (Rust) tokenizer: it matches anchored terms through token offsets")
    matcher = matcher or AnchorMatcher(list(anchors))
    stats = stats if stats is not None else TranslationStats()
    ids, offsets = encode_framed(tokenizer, text)
    index = TokenIndex(text, offsets)
    occurrences, unaligned = matcher.find_aligned(text, offsets)
    stats.unaligned += unaligned
    by_first_token = {occ.first_token: occ for occ in occurrences}

    blocks: list[TranslatedBlock] = []
    builder = _BlockBuilder(seed, doc_index, 0, anchors, train_repeated_anchor_predictions)

    def flush() -> None:
        nonlocal builder
        if len(builder.original) >= 2:
            blocks.append(builder.build(spare_text_tokens))
        builder = _BlockBuilder(seed, doc_index, builder.block_index + 1, anchors,
                                train_repeated_anchor_predictions)

    def add_plain(token_id: int) -> None:
        if not builder.fits(1, 1, block_size):
            flush()
        builder.add_token(token_id)

    k = 0
    while k < len(ids):
        occurrence = by_first_token.get(k)
        if occurrence is None:
            add_plain(ids[k])
            k += 1
            continue
        original_ids = ids[occurrence.first_token: occurrence.last_token + 1]
        placed = False
        for attempt in range(2):  # the current block, then (if the anchor fits an empty block) a fresh one
            alternative = builder.alternative_for(occurrence.term)
            replacement = _replacement_ids(tokenizer, text, index, occurrence, alternative)
            if builder.fits(len(original_ids), len(replacement), block_size):
                stats.repeated += any(r.term == occurrence.term for r in builder.replacements)
                builder.add_anchor(occurrence.term, alternative, original_ids, replacement,
                                   _first_word_token(tokenizer, replacement), _first_word_token(tokenizer, original_ids))
                stats.translated += 1
                stats.per_term[occurrence.term] = stats.per_term.get(occurrence.term, 0) + 1
                placed = True
                break
            if attempt or not builder.original or max(len(original_ids), len(replacement)) > block_size:
                break
            flush()
        if not placed:  # longer than a whole block: keep the original tokens
            for token_id in original_ids:
                add_plain(token_id)
        k = occurrence.last_token + 1
    flush()
    stats.documents += 1
    stats.blocks += len(blocks)
    stats.tokens += sum(len(b.original_ids) for b in blocks)
    return blocks


def translate_documents(
    texts: Sequence[str],
    tokenizer,
    anchors: Mapping[str, Sequence[str]],
    block_size: int = 512,
    seed: int = 0,
    spare_text_tokens: bool = True,
    train_repeated_anchor_predictions: bool = False,
) -> tuple[list[TranslatedBlock], TranslationStats]:
    matcher = AnchorMatcher(list(anchors))
    stats = TranslationStats()
    blocks: list[TranslatedBlock] = []
    for doc_index, text in enumerate(texts):
        blocks.extend(translate_document(text, tokenizer, anchors, block_size, seed, doc_index, matcher,
                                         spare_text_tokens, stats, train_repeated_anchor_predictions))
    return blocks, stats
