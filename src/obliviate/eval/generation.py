"""Batched greedy generation (ROUGE answers, familiarity completions, verbatim continuations).

Prompts are sorted by length, left-padded (so every row's new tokens start at the same
column) and decoded with ``model.generate``; results come back in input order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import GenerationConfig

from obliviate.errors import UserError
from obliviate.eval.scoring import model_device, pad_batch, pad_token_id


@dataclass
class GreedyConfig:
    max_new_tokens: int = 32
    batch_size: int = 32
    # Cut each completion at the first of these strings; generation of a batch stops
    # early once every row holds one (e.g. "\n" for one-line QA answers).
    stop_strings: tuple[str, ...] = ()
    add_special_tokens: bool = True


def cut_at_stop(text: str, stop_strings: Sequence[str]) -> str:
    cut = len(text)
    for stop in stop_strings:
        position = text.find(stop)
        if position != -1:
            cut = min(cut, position)
    return text[:cut]


def _generation_config(model, tokenizer, config: GreedyConfig) -> GenerationConfig:
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else getattr(model.config, "eos_token_id", None)
    return GenerationConfig(
        max_new_tokens=config.max_new_tokens,
        do_sample=False,
        num_beams=1,
        pad_token_id=pad_token_id(tokenizer),
        eos_token_id=eos,
        stop_strings=list(config.stop_strings) or None,
    )


@torch.inference_mode()
def generate_greedy(model, tokenizer, prompts: Sequence[str], config: GreedyConfig = GreedyConfig()) -> list[str]:
    """Greedy completion of each prompt (new text only, special tokens removed)."""
    if config.batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {config.batch_size}")
    if not prompts:
        return []
    encoded = tokenizer(list(prompts), add_special_tokens=config.add_special_tokens)["input_ids"]
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None:
        room = max(limit - config.max_new_tokens, 1)
        encoded = [ids[-room:] for ids in encoded]  # keep the end of an over-long prompt
    if any(len(ids) == 0 for ids in encoded):
        raise UserError("cannot generate from an empty prompt with a tokenizer that adds no BOS token")
    generation_config = _generation_config(model, tokenizer, config)
    extra = {"tokenizer": tokenizer} if config.stop_strings else {}
    device = model_device(model)
    pad_id = pad_token_id(tokenizer)
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    outputs: list[str | None] = [None] * len(encoded)
    for begin in range(0, len(order), config.batch_size):
        indices = order[begin: begin + config.batch_size]
        input_ids, attention_mask = pad_batch([encoded[i] for i in indices], pad_id, "left")
        generated = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            generation_config=generation_config,
            **extra,
        )
        new_tokens = generated[:, input_ids.shape[1]:].cpu()
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        for index, text in zip(indices, texts):
            outputs[index] = cut_at_stop(text, config.stop_strings)
    return outputs  # type: ignore[return-value]
