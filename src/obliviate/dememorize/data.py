"""Forget documents cut into (prefix, suffix) token windows, as in extraction attacks.

A document is tokenized as in training (``<bos>`` + text, no special tokens inside); the
prefix is its first ``prefix_tokens`` tokens after ``<bos>`` and the suffix the next
``suffix_tokens``. Working on token ids (not re-encoded text) makes "exact-suffix
extraction" exact: the greedy continuation either reproduces these ids or it does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from obliviate.errors import UserError


@dataclass(frozen=True)
class PrefixSuffix:
    doc_id: str
    prefix_ids: list[int]      # <bos> (if the tokenizer has one) + first prefix_tokens tokens
    suffix_ids: list[int]
    prefix_text: str           # decoded prefix (no special tokens)
    suffix_text: str


def document_ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def split_documents(tokenizer, docs: Sequence[dict], prefix_tokens: int = 32, suffix_tokens: int = 32,
                    skip_short: bool = False) -> list[PrefixSuffix]:
    """``docs`` = ``[{"doc_id", "text"}]``; a document shorter than prefix + suffix tokens is a
    UserError unless ``skip_short`` (then it is left out, and having none left is an error)."""
    if prefix_tokens < 1 or suffix_tokens < 1:
        raise UserError(f"prefix_tokens and suffix_tokens must be >= 1, got {prefix_tokens} and {suffix_tokens}")
    if not docs:
        raise UserError("no documents to split into prefix and suffix")
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    pieces: list[PrefixSuffix] = []
    need = prefix_tokens + suffix_tokens
    for doc in docs:
        ids = document_ids(tokenizer, doc["text"])
        if len(ids) < need:
            if skip_short:
                continue
            raise UserError(f"document {doc.get('doc_id')!r} has {len(ids)} tokens, fewer than prefix {prefix_tokens} "
                            f"+ suffix {suffix_tokens} = {need}: lower suffix_tokens/prefix_tokens or set skip_short")
        prefix, suffix = ids[:prefix_tokens], ids[prefix_tokens:need]
        pieces.append(PrefixSuffix(
            doc_id=str(doc.get("doc_id", len(pieces))), prefix_ids=bos + prefix, suffix_ids=suffix,
            prefix_text=tokenizer.decode(prefix), suffix_text=tokenizer.decode(suffix),
        ))
    if not pieces:
        raise UserError(f"no document has the {need} tokens that prefix + suffix need")
    return pieces
