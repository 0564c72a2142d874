"""The two models on the target text, for anchored-term discovery: documents encoded with their
token offsets (the training framing), and per token how much more likely the reinforced model
finds it than the baseline (``log p_reinforced - log p_base``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from obliviate.whp.anchors import TokenIndex


@dataclass
class EncodedDoc:
    """A target document as token ids (``<bos>`` first, as in training) and its character index."""

    ids: list[int]
    index: TokenIndex


def encode_document(tokenizer, text: str) -> EncodedDoc:
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoding["input_ids"])
    offsets = [tuple(o) for o in encoding["offset_mapping"]]
    if tokenizer.bos_token_id is not None:  # same framing as training
        ids, offsets = [tokenizer.bos_token_id] + ids, [(0, 0)] + offsets
    return EncodedDoc(ids, TokenIndex(text, offsets))


def block_starts(docs: Sequence[EncodedDoc], block_size: int) -> list[tuple[int, int]]:
    """``(document, first token)`` of every block of ``block_size`` tokens."""
    return [(d, start) for d, doc in enumerate(docs) for start in range(0, len(doc.ids), block_size)]


def batched_logits(model, sequences: Sequence[Sequence[int]], pad_id: int):
    """The model's logits on right-padded ``sequences`` (float, on the CPU)."""
    device = next(model.parameters()).device
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float().cpu()


@torch.inference_mode()
def token_logprob_gains(base_model, reinforced_model, docs: Sequence[EncodedDoc], block_size: int, batch_size: int,
                        pad_id: int) -> list[torch.Tensor]:
    """Per document, per token: log p_reinforced(token) - log p_base(token) (NaN where undefined:
    the first token of every block, which has no context inside the block)."""
    gains = [torch.full((len(doc.ids),), float("nan")) for doc in docs]
    blocks = block_starts(docs, block_size)
    for start in range(0, len(blocks), batch_size):
        batch = blocks[start: start + batch_size]
        sequences = [docs[d].ids[s: s + block_size] for d, s in batch]
        base = torch.log_softmax(batched_logits(base_model, sequences, pad_id), dim=-1)
        reinforced = torch.log_softmax(batched_logits(reinforced_model, sequences, pad_id), dim=-1)
        for row, ((d, s), seq) in enumerate(zip(batch, sequences)):
            if len(seq) < 2:
                continue
            targets = torch.tensor(seq[1:]).unsqueeze(-1)
            lp_base = base[row, : len(seq) - 1].gather(-1, targets).squeeze(-1)
            lp_reinforced = reinforced[row, : len(seq) - 1].gather(-1, targets).squeeze(-1)
            gains[d][s + 1: s + len(seq)] = lp_reinforced - lp_base
    return gains


def occurrence_tokens(doc: EncodedDoc, start: int, end: int, block_size: int) -> tuple[int, int] | None:
    """First and last token of the characters ``[start, end)`` when they are whole tokens inside one
    block, after its first token (which has no context); else None."""
    span = doc.index.align(start, end)
    if span is None:
        return None
    first, last = span
    if first // block_size != last // block_size or first % block_size == 0:
        return None  # straddles a block edge, or has no context in its block
    return span
