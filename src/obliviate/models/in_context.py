"""A causal LM that unlearns in context: the unchanged weights plus a stored ICUL context.

In-context unlearning changes no weight; what it changes is what the model is shown. This
wrapper makes that a model one can score, generate from, save and reload: every input row
is prefixed (at the token level) with an ICUL context before it reaches the base model:

    <bos> {forget item, wrong answer}\\n\\n ... {demonstration, right answer}\\n\\n {the row}

and only the row's own positions come back, so the scoring engine and ``generate`` see a
model that takes the same inputs as the base model.

Which forget items go into a row's context:
- ``matched`` (default): the forget items whose question prompt occurs in the row (token
  ids), at most ``max_matched``; a row that asks about nothing forgotten gets only the
  demonstrations. This is the paper's per-request context, applied per query.
- ``all``: every forget item, in every row (the paper's multi-deletion context); it must
  fit in the model's context window.

Saved layout: the base model's weights and generation config, and a ``config.json`` of
``model_type`` ``obliviate_icul`` holding the base config and the context (token ids, so
no tokenizer is needed at inference). Importing this module registers the type with the
Auto classes (``obliviate.models.loading`` does it); without that import, loading fails
loudly instead of silently returning the base model without its context.

The context itself is built elsewhere (:func:`obliviate.icul.qa.icul_model`): this module
only knows the stored spec, so ``obliviate.models`` needs nothing from ``obliviate.icul``.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import torch
from transformers import CONFIG_MAPPING, AutoConfig, AutoModelForCausalLM, PretrainedConfig
from transformers.modeling_outputs import CausalLMOutputWithPast

ICUL_MODEL_TYPE = "obliviate_icul"
SELECTIONS = ("matched", "all")


class IculConfig(PretrainedConfig):
    """Config of an in-context-unlearning model: the base config plus the context spec.

    ``context`` = ``{"bos_id", "selection", "max_matched", "forget": [{"id", "trigger", "line"}],
    "demos": [[ids]], "separator": [ids], "settings": {...}}``.
    """

    model_type = ICUL_MODEL_TYPE

    def __init__(self, base_config: dict | None = None, context: dict | None = None, **kwargs):
        self.base_config = dict(base_config or {})
        self.context = dict(context or {})
        for key in ("max_position_embeddings", "vocab_size", "bos_token_id", "eos_token_id", "pad_token_id"):
            if key in self.base_config and key not in kwargs:
                kwargs[key] = self.base_config[key]
        super().__init__(**kwargs)

    def build_base_config(self) -> PretrainedConfig:
        base = dict(self.base_config)
        return CONFIG_MAPPING[base.pop("model_type")].from_dict(base)


def _contains(row: list[int], pattern: list[int]) -> bool:
    if not pattern or len(pattern) > len(row):
        return False
    first = pattern[0]
    width = len(pattern)
    return any(row[i] == first and row[i:i + width] == pattern for i in range(len(row) - width + 1))


class InContextUnlearningLM(torch.nn.Module):
    """Base causal LM + ICUL context; ``forward`` and ``generate`` take the base model's inputs."""

    config_class = IculConfig
    main_input_name = "input_ids"

    def __init__(self, base, config: IculConfig):
        super().__init__()
        self.base = base
        self.config = config
        self.generation_config = getattr(base, "generation_config", None)
        if config.context.get("selection", "matched") not in SELECTIONS:
            raise ValueError(f"unknown ICUL context selection {config.context.get('selection')!r}")

    # -- what the rest of the project asks of a model ---------------------------------
    def get_input_embeddings(self):
        return self.base.get_input_embeddings()

    @property
    def device(self) -> torch.device:
        return self.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.get_input_embeddings().weight.dtype

    def can_generate(self) -> bool:
        return True

    # -- the context ------------------------------------------------------------------
    def context_ids(self, row: list[int], budget: int) -> list[int]:
        """Context tokens for one row (its real tokens, without BOS), at most ``budget`` long."""
        spec = self.config.context
        separator = list(spec.get("separator", []))
        if spec.get("selection", "matched") == "all":
            forget = spec.get("forget", [])
        else:
            forget = [entry for entry in spec.get("forget", []) if _contains(row, entry["trigger"])]
            forget = forget[: int(spec.get("max_matched", 4))]
        bos = [spec["bos_id"]] if spec.get("bos_id") is not None else []
        context = list(bos)
        # forget lines first (the paper's order), then demonstrations, while they fit
        for line in [entry["line"] for entry in forget] + list(spec.get("demos", [])):
            piece = list(line) + separator
            if len(context) + len(piece) > budget:
                break
            context += piece
        return context if len(context) > len(bos) else []

    def _limit(self) -> int:
        return int(getattr(self.config, "max_position_embeddings", None) or 10 ** 9)

    def _base_accepts(self, name: str) -> bool:
        try:
            return name in inspect.signature(self.base.forward).parameters
        except (TypeError, ValueError):
            return False

    def _strip_bos(self, row: list[int]) -> list[int]:
        bos = self.config.context.get("bos_id")
        return row[1:] if bos is not None and row[:1] == [bos] else row

    # -- forward ------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, logits_to_keep: int = 0, use_cache: bool = False,
                labels: torch.Tensor | None = None, **kwargs: Any) -> CausalLMOutputWithPast:
        """Logits for the row positions only (``[B, T, V]``, or the last ``logits_to_keep``).

        Each row becomes ``[pad.., context, row]``; the row keeps its own padding (masked),
        and a leading BOS of the row is masked out, since the context already starts with one.
        Position ids follow the attention mask, so mid-row padding is invisible.
        """
        batch, width = input_ids.shape
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        mask = attention_mask.clone()
        bos = self.config.context.get("bos_id")
        contexts = []
        for r in range(batch):
            real_positions = mask[r].nonzero().flatten().tolist()
            row = input_ids[r, real_positions].tolist()
            if bos is not None and row[:1] == [bos]:
                mask[r, real_positions[0]] = 0
                row = row[1:]
            contexts.append(self.context_ids(row, self._limit() - len(row)))
        prefix = max((len(c) for c in contexts), default=0)
        pad_id = self.config.pad_token_id if self.config.pad_token_id is not None else 0
        ids = torch.full((batch, prefix + width), pad_id, dtype=input_ids.dtype, device=input_ids.device)
        full_mask = torch.zeros((batch, prefix + width), dtype=mask.dtype, device=mask.device)
        for r, context in enumerate(contexts):
            if context:
                ids[r, prefix - len(context):prefix] = torch.tensor(context, dtype=input_ids.dtype)
                full_mask[r, prefix - len(context):prefix] = 1
        ids[:, prefix:] = input_ids
        full_mask[:, prefix:] = mask
        positions = (full_mask.cumsum(-1) - 1).clamp(min=0)
        keep = logits_to_keep if logits_to_keep else width
        extra = {"logits_to_keep": keep} if self._base_accepts("logits_to_keep") else {}
        outputs = self.base(input_ids=ids, attention_mask=full_mask, position_ids=positions, use_cache=False,
                            **extra)
        logits = outputs.logits[:, -keep:]
        loss = None
        if labels is not None:
            shifted = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
            loss = torch.nn.functional.cross_entropy(shifted, labels[:, -keep:][:, 1:].reshape(-1), ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits)

    # -- generate -----------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 generation_config=None, **kwargs: Any) -> torch.Tensor:
        """``base.generate`` on context-prefixed rows; returns ``[input_ids, new tokens]``."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        settings = generation_config or self.generation_config
        new_tokens = kwargs.get("max_new_tokens") or getattr(settings, "max_new_tokens", None) or 0
        rows = []
        for r in range(input_ids.shape[0]):
            row = self._strip_bos(input_ids[r, attention_mask[r].bool()].tolist())
            rows.append(self.context_ids(row, self._limit() - len(row) - new_tokens) + row)
        if any(not row for row in rows):
            raise ValueError("cannot generate from an empty row")
        width = max(len(row) for row in rows)
        pad_id = self.config.pad_token_id if self.config.pad_token_id is not None else 0
        ids = torch.full((len(rows), width), pad_id, dtype=input_ids.dtype, device=input_ids.device)
        mask = torch.zeros_like(ids)
        for r, row in enumerate(rows):
            ids[r, width - len(row):] = torch.tensor(row, dtype=input_ids.dtype)
            mask[r, width - len(row):] = 1
        generated = self.base.generate(input_ids=ids, attention_mask=mask, generation_config=generation_config,
                                       **kwargs)
        return torch.cat([input_ids, generated[:, width:].to(input_ids.device)], dim=1)

    # -- persistence ----------------------------------------------------------------------
    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        save_directory = Path(save_directory)
        self.base.save_pretrained(str(save_directory), **kwargs)
        self.config.architectures = [type(self).__name__]
        self.config.save_pretrained(str(save_directory))  # replaces the base's config.json

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *args: Any, config: IculConfig | None = None,
                        **kwargs: Any) -> "InContextUnlearningLM":
        if config is None:
            config = IculConfig.from_pretrained(str(path))
        for unused in ("adapter_kwargs", "trust_remote_code"):
            if kwargs.get(unused) is None:
                kwargs.pop(unused, None)
        base = AutoModelForCausalLM.from_pretrained(str(path), *args, config=config.build_base_config(), **kwargs)
        return cls(base, config)


def register() -> None:
    AutoConfig.register(ICUL_MODEL_TYPE, IculConfig, exist_ok=True)
    AutoModelForCausalLM.register(IculConfig, InContextUnlearningLM, exist_ok=True)


register()
