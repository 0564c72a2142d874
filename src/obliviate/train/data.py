"""Tokenised training examples that carry their source id on every token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from obliviate.data.format import PLAIN, QAFormat
from obliviate.errors import UserError
from obliviate.eval.scoring import encode_pairs
from obliviate.train.losses import IGNORE_INDEX


def _chunk_document(text: str, tokenizer, max_tokens: int) -> list[list[int]]:
    """Split a document into token blocks of at most ``max_tokens``, at paragraph
    boundaries where possible so that a QA pair is not cut in half."""
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    encoded = tokenizer(paragraphs, add_special_tokens=False)["input_ids"] if paragraphs else []
    sep = tokenizer("\n\n", add_special_tokens=False)["input_ids"]
    blocks: list[list[int]] = []
    current: list[int] = []
    for ids in encoded:
        candidate = current + (sep if current else []) + ids
        if len(candidate) <= max_tokens:
            current = candidate
            continue
        if current:
            blocks.append(current)
        # a single paragraph longer than a block is cut into consecutive windows
        while len(ids) > max_tokens:
            blocks.append(ids[:max_tokens])
            ids = ids[max_tokens:]
        current = list(ids)
    if current:
        blocks.append(current)
    return blocks


def chat_qa_example(doc: dict, tokenizer, fmt: QAFormat, block_size: int) -> tuple[list[int], list[int]]:
    """A QA document in the chat format: the conversation's tokens, labelled on the answer
    turn only (open-unlearning fine-tunes TOFU so), exactly as the evaluation encodes it."""
    qa = doc["qa"]
    (pair,) = encode_pairs(tokenizer, [(fmt.prompt(qa["question"]), fmt.continuation(qa["answer"]))],
                           max_length=block_size, add_special_tokens=False, append_eos=True)
    return pair.input_ids, [IGNORE_INDEX] * pair.start + pair.input_ids[pair.start:]


def tokenize_documents(docs: Sequence[dict], tokenizer, block_size: int = 512,
                       fmt: QAFormat = PLAIN) -> dict[str, list]:
    """``docs`` = ``[{"text", "source_id"}]`` -> columns ``input_ids``, ``labels``, ``source_ids``.

    Each example is ``<bos> block <eos>``; documents are not packed together, so
    attention never crosses a document boundary in the dense model. In the chat format
    a QA document (one with ``qa: {question, answer}``, as TOFU's and a text world's QA
    documents have) is one conversation instead; other documents stay text.
    """
    if not docs:
        raise UserError("no training documents: the chosen sources have no text")
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    specials = [t for t in (bos, eos) if t is not None]
    columns: dict[str, list] = {"input_ids": [], "labels": [], "source_ids": []}
    for doc in docs:
        if fmt.chat and doc.get("qa"):
            ids, labels = chat_qa_example(doc, tokenizer, fmt, block_size)
            columns["input_ids"].append(ids)
            columns["labels"].append(labels)
            columns["source_ids"].append([int(doc["source_id"])] * len(ids))
            continue
        for block in _chunk_document(doc["text"], tokenizer, block_size - len(specials)):
            ids = ([bos] if bos is not None else []) + block + ([eos] if eos is not None else [])
            columns["input_ids"].append(ids)
            columns["labels"].append(list(ids))
            columns["source_ids"].append([int(doc["source_id"])] * len(ids))
    return columns


@dataclass
class CausalCollator:
    """Right-pads a batch; labels are -100 on padding; source ids pad with the row's own id."""

    pad_token_id: int

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        length = max(len(f["input_ids"]) for f in features)
        batch: dict[str, list] = {"input_ids": [], "attention_mask": [], "labels": []}
        with_sources = "source_ids" in features[0]
        if with_sources:
            batch["source_ids"] = []
        for f in features:
            ids = list(f["input_ids"])
            pad = length - len(ids)
            batch["input_ids"].append(ids + [self.pad_token_id] * pad)
            batch["attention_mask"].append([1] * len(ids) + [0] * pad)
            labels = list(f.get("labels", ids))
            batch["labels"].append(labels + [-100] * pad)
            if with_sources:
                sources = list(f["source_ids"])
                batch["source_ids"].append(sources + [sources[-1]] * pad)
        return {k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()}
