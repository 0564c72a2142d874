"""Forget/retain training data for post-hoc unlearning: encoding, pairing, collation.

QA items become ``prompt + continuation`` token ids (``obliviate.data.format``) with
labels only on the answer tokens; documents become windows labelled on every token.
A training example pairs one forget example with one retain example (plus any
aligned extra part, e.g. the "I don't know" version of the forget example), and the
collator pads every part of a batch to one common length so that a trainer can run
all parts through the model in a single forward pass (one forward per step keeps
DDP, FSDP and DeepSpeed happy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from obliviate.data.format import PLAIN, QAFormat
from obliviate.errors import UserError
from obliviate.eval.scoring import encode_pairs
from obliviate.train.data import chat_qa_example
from obliviate.train.losses import IGNORE_INDEX


def encode_prompt_answers(
    tokenizer, pairs: Sequence[tuple[str, str]], max_length: int = 512, add_special_tokens: bool = True
) -> list[dict[str, list[int]]]:
    """``(prompt, continuation)`` pairs as training examples labelled only on the continuation.

    Tokenisation is the scoring engine's (``encode(prompt + continuation)``, split where
    ``encode(prompt)`` ends), so the tokens a method pushes down are exactly the tokens
    every metric scores.
    """
    examples = []
    for pair in encode_pairs(tokenizer, pairs, max_length=max_length, add_special_tokens=add_special_tokens):
        labels = [IGNORE_INDEX] * pair.start + pair.input_ids[pair.start:]
        examples.append({"input_ids": list(pair.input_ids), "labels": labels})
    return examples


def encode_qa(tokenizer, items: Sequence[dict], answers: Sequence[str] | None = None,
              max_length: int = 512, fmt: QAFormat = PLAIN) -> list[dict[str, list[int]]]:
    """QA items (or the same questions with other ``answers``) as training examples, in the
    model's QA format (``fmt``: plain or its chat template)."""
    texts = [item["answer"] for item in items] if answers is None else list(answers)
    pairs = [(fmt.prompt(item["question"]), fmt.continuation(text)) for item, text in zip(items, texts)]
    return encode_prompt_answers(tokenizer, pairs, max_length, fmt.add_special_tokens)


def encode_documents(tokenizer, docs: Sequence[dict], max_length: int = 512,
                     fmt: QAFormat = PLAIN) -> list[dict[str, list[int]]]:
    """Corpus documents cut into ``<bos> window <eos>`` examples labelled on every token; in
    the chat format a QA document is its conversation, labelled on the answer (as trained)."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    room = max_length - (bos is not None) - (eos is not None)
    if room < 1:
        raise UserError(f"max_length={max_length} leaves no room for document text")
    examples = []
    for doc in docs:
        if fmt.chat and doc.get("qa"):
            ids, labels = chat_qa_example(doc, tokenizer, fmt, max_length)
            examples.append({"input_ids": ids, "labels": labels})
            continue
        ids = list(tokenizer(doc["text"], add_special_tokens=False)["input_ids"])
        for start in range(0, len(ids), room):
            window = ([bos] if bos is not None else []) + ids[start:start + room] + ([eos] if eos is not None else [])
            examples.append({"input_ids": window, "labels": list(window)})
    return examples


class PairedDataset(torch.utils.data.Dataset):
    """Example ``i`` holds ``part[i % len(part)]`` of every named part.

    The length is that of the longest part, so one epoch visits every forget and every
    retain example at least once; parts of equal length stay aligned (the forget
    example and its "I don't know" twin share an index).
    """

    def __init__(self, parts: dict[str, list[dict]]):
        empty = [name for name, examples in parts.items() if not examples]
        if empty:
            raise UserError(f"no training examples for: {', '.join(empty)}")
        self.parts = parts
        self.length = max(len(examples) for examples in parts.values())

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, dict]:
        return {name: examples[index % len(examples)] for name, examples in self.parts.items()}


@dataclass
class PartsCollator:
    """Right-pads every part of a batch to one common length.

    Returns ``{part: {"input_ids", "attention_mask", "labels"}}``; labels are -100 on padding.
    """

    pad_token_id: int

    def __call__(self, features: list[dict[str, dict]]) -> dict[str, dict[str, torch.Tensor]]:
        names = list(features[0])
        length = max(len(f[name]["input_ids"]) for f in features for name in names)
        batch: dict[str, dict[str, torch.Tensor]] = {}
        for name in names:
            ids, mask, labels = [], [], []
            for feature in features:
                example = feature[name]
                pad = length - len(example["input_ids"])
                ids.append(list(example["input_ids"]) + [self.pad_token_id] * pad)
                mask.append([1] * len(example["input_ids"]) + [0] * pad)
                labels.append(list(example["labels"]) + [IGNORE_INDEX] * pad)
            batch[name] = {
                "input_ids": torch.tensor(ids, dtype=torch.long),
                "attention_mask": torch.tensor(mask, dtype=torch.long),
                "labels": torch.tensor(labels, dtype=torch.long),
            }
        return batch
