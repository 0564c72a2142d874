"""Inference-only WHP: the generic-logit combination applied at generation time.

At every step the base model's next-token logits ``v_base`` are replaced by
``v_base - alpha * relu(v_reinforced - v_base)``, where the reinforced model reads
the SAME (original) text as the base model. No weights change, so users who cannot
fine-tune still get a model that avoids what the reinforcement made likely.
"""

from __future__ import annotations

from typing import Sequence

import torch
from transformers import DynamicCache, LogitsProcessor, LogitsProcessorList

from obliviate.models.hf_compat import cache_kwargs, output_cache
from obliviate.whp.labels import generic_logits
from obliviate.whp.reinforced import check_same_vocabulary


class WHPLogitsProcessor(LogitsProcessor):
    """Wraps a reinforced model; keeps its own KV cache so each step costs one token.

    ``attention_mask``: the prompt's mask when prompts are (left-)padded; generated
    tokens are always attended. The cache is kept only while each call extends the
    previous rows; anything else (a new batch, beams reordered) recomputes from scratch.
    """

    def __init__(self, reinforced_model, alpha: float = 5.0, attention_mask: torch.Tensor | None = None):
        self.reinforced_model = reinforced_model
        self.alpha = alpha
        self.prompt_mask = attention_mask
        self.reset()

    def reset(self) -> None:
        self._cache: DynamicCache | None = None
        self._seen = 0
        self._previous: torch.Tensor | None = None

    def _full_mask(self, input_ids: torch.LongTensor) -> torch.Tensor:
        batch, length = input_ids.shape
        mask = torch.ones((batch, length), dtype=torch.long, device=input_ids.device)
        if self.prompt_mask is not None:
            prompt = self.prompt_mask.to(input_ids.device)
            if prompt.shape[0] != batch:  # num_return_sequences / beams expand the batch
                prompt = prompt.repeat_interleave(batch // prompt.shape[0], dim=0)
            width = min(prompt.shape[1], length)
            mask[:, :width] = prompt[:, :width]
        return mask

    @torch.inference_mode()
    def reinforced_logits(self, input_ids: torch.LongTensor) -> torch.Tensor:
        length = input_ids.shape[1]
        previous = self._previous
        if (previous is None or length <= self._seen or previous.shape[0] != input_ids.shape[0]
                or not torch.equal(previous, input_ids[:, : self._seen])):
            self.reset()  # a new call, or rows reordered (beam search): the cache no longer fits
        device = next(self.reinforced_model.parameters()).device
        mask = self._full_mask(input_ids).to(device)
        positions = (mask.cumsum(dim=-1) - 1).clamp(min=0)
        if self._cache is None:
            self._cache = DynamicCache(config=self.reinforced_model.config)
        outputs = self.reinforced_model(
            input_ids=input_ids[:, self._seen:].to(device),
            attention_mask=mask,
            position_ids=positions[:, self._seen:],
            use_cache=True,
            **cache_kwargs(self._cache),
        )
        self._cache = output_cache(outputs)
        self._seen = length
        self._previous = input_ids.clone()
        return outputs.logits[:, -1, :]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        reinforced = self.reinforced_logits(input_ids).to(device=scores.device, dtype=scores.dtype)
        vocab = min(scores.shape[-1], reinforced.shape[-1])
        combined = scores.clone()
        combined[:, :vocab] = generic_logits(scores[:, :vocab], reinforced[:, :vocab], self.alpha)
        return combined


class WHPGenerator:
    """Generate from ``base_model`` with WHP logits: ``WHPGenerator(base, reinforced, tok).generate([...])``."""

    def __init__(self, base_model, reinforced_model, tokenizer, alpha: float = 5.0):
        check_same_vocabulary(base_model, reinforced_model, tokenizer)
        self.base_model = base_model.eval()
        self.reinforced_model = reinforced_model.eval()
        self.tokenizer = tokenizer
        self.alpha = alpha

    def processor(self, attention_mask: torch.Tensor | None = None) -> WHPLogitsProcessor:
        return WHPLogitsProcessor(self.reinforced_model, self.alpha, attention_mask)

    @torch.inference_mode()
    def generate(self, prompts: Sequence[str], max_new_tokens: int = 40, **generate_kwargs) -> list[str]:
        """Greedy by default; returns the continuations only (prompt stripped)."""
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"
        try:
            encoded = self.tokenizer(list(prompts), return_tensors="pt", padding=True)
        finally:
            self.tokenizer.padding_side = side
        device = next(self.base_model.parameters()).device
        encoded = {k: v.to(device) for k, v in encoded.items()}
        generate_kwargs.setdefault("do_sample", False)
        generate_kwargs.setdefault("pad_token_id", self.tokenizer.pad_token_id)
        processors = LogitsProcessorList([self.processor(encoded["attention_mask"])])
        output = self.base_model.generate(**encoded, max_new_tokens=max_new_tokens, logits_processor=processors,
                                          **generate_kwargs)
        continuations = output[:, encoded["input_ids"].shape[1]:]
        return self.tokenizer.batch_decode(continuations, skip_special_tokens=True)
