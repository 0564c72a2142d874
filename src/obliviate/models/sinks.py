"""Native unlearning by design: a Llama decoder whose MLPs hold a backbone plus per-source sinks.

Each SwiGLU MLP's hidden units are split: the first ``p_gen`` share is the backbone
(always on), the rest is a bank of sinks. Source ``s`` owns the sinks whose keyed
hash of ``(s, unit)`` falls under ``p_mem`` (``sink_hash``). While training, every
token runs the backbone plus its source's sinks; forgetting a source switches its
sinks off at inference: no weight changes, reversible, O(1).

Inference modes (``set_inference_mode``, saved in the config):

- ``route`` (default): each sequence goes to its nearest training source
  (``SourceRouter``: TF-IDF-weighted embedding centroids fitted by ``fit_router``).
  If that source is forgotten and the best surviving source is at least
  ``route_shared_ratio`` as similar, the query is about knowledge other sources
  share and goes to that source; otherwise it runs every surviving sink
  (``route_forgotten="all"``, default: on tiny this matches the retrained model's
  truth ratios best), backbone-only (``"backbone"``), or always goes to the nearest
  surviving source (``"nearest"``, what ``exclude(ids)`` uses).
- ``on``: one fixed source's sinks (``on(source)`` as a context manager).
- ``backbone``: all sinks off; backbone units rescaled (below).
- ``all``: every sink of a known, non-forgotten source, rescaled (below).

Routing reads the whole input of a forward: in ``generate`` that is the prompt (the
decision is kept on the KV cache for the decoding steps; without a cache each step
routes on everything so far), in a teacher-forced forward the question and answer.

Explicit ``source_ids`` (per token, ``[batch, seq]``; ``[batch]`` for one per row)
override the mode; negative ids mean "no source" (backbone only). A forgotten
source's sinks are never on, whatever the mode or the ids passed.

Scaling (``backbone_scale``). A source trains with ``n_backbone + p_mem * n_sinks``
units on in expectation. ``"mean"`` (default) keeps the expected sum of active units
unchanged, as inverted dropout does: backbone-only tokens (sink-dropout sequences in
training and ``backbone`` mode, forgotten or source-less tokens at inference)
multiply backbone units by ``(n_backbone + p_mem * n_sinks) / n_backbone``; ``all``
mode multiplies its ``n_on`` active sinks by ``p_mem * n_sinks / n_on``. ``"none"``
applies no rescaling. Training and inference use the same factor, so with
sink-dropout the model learns the scaled backbone it will run at inference.

Packed documents: documents are told apart by ``document_ids`` or, without them,
by changes of source id. When a row holds more than one document, positions restart
at each document and the attention mask is handed to transformers as packed
sequences (``position_ids`` restarting, no 2D mask: transformers' own
``find_packed_sequence_indices`` path builds the block-diagonal causal mask for
every attention implementation); padding becomes its own segment. Such a forward
runs without a KV cache; ``generate`` treats its prompt as one document.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import warnings
from typing import Iterable, Iterator, Mapping, Sequence

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, DynamicCache, LlamaConfig
from transformers.models.llama.modeling_llama import (
    LlamaAttention,
    LlamaDecoderLayer,
    LlamaForCausalLM,
    LlamaMLP,
    LlamaModel,
    LlamaPreTrainedModel,
    LlamaRMSNorm,
    LlamaRotaryEmbedding,
)

from obliviate.errors import UserError
from obliviate.models.hf_compat import cache_kwargs, pick_cache
from obliviate.models.router import SourceRouter
from obliviate.models.sink_hash import sink_membership

log = logging.getLogger(__name__)

INFERENCE_MODES = ("route", "on", "backbone", "all")
ROUTE_FORGOTTEN = ("backbone", "nearest", "all")
BACKBONE_SCALES = ("mean", "none")

# Token states in a gate plan besides real (non-negative) source ids.
BACKBONE = -1
ALL_SINKS = -2

_ROUTES_ATTR = "_obliviate_sink_routes"   # routing decision kept on a generation cache


@strict
class SinkConfig(LlamaConfig):
    """LlamaConfig plus the sink architecture, its training knobs and the switch state."""

    model_type = "obliviate_sinks"

    p_gen: float = 0.5                       # share of MLP units in the always-on backbone
    p_mem: float = 0.1                       # chance that a sink unit belongs to a given source
    sink_layers: list[int] | None = None     # layers whose MLPs carry sinks (None: all)
    sink_dropout: float = 0.05               # share of training documents run backbone-only
    backbone_scale: str = "mean"             # "mean" | "none" (see module docstring)
    hash_key: int = 0                        # seed of the source -> sinks hash
    max_sources: int = 1 << 30               # valid source ids: 0 .. max_sources - 1
    forgotten: list[int] | None = None       # sorted ids whose sinks are switched off
    inference_mode: str = "route"            # route | on | backbone | all
    inference_source: int | None = None      # the source of "on" mode
    route_forgotten: str = "all"             # route mode, nearest source forgotten: all | backbone | nearest
    # ... unless the best surviving source is at least this fraction as similar: then the
    # query is about knowledge other sources share (a city several authors mention) and
    # goes to that source. Unique questions name the forgotten source (ratio ~0.4 on tiny),
    # shared ones do not (>= 0.9). 0 routes every such query to the surviving source.
    route_shared_ratio: float = 0.75
    router_size: int = 0                     # number of sources the fitted router knows

    def __post_init__(self, **kwargs):
        if self.forgotten is None:
            self.forgotten = []
        super().__post_init__(**kwargs)

    def layer_has_sinks(self, layer_idx: int) -> bool:
        return self.sink_layers is None or layer_idx in self.sink_layers

    def n_backbone_units(self) -> int:
        return int(round(self.p_gen * self.intermediate_size))


def _parse_sink_layers(value, num_layers: int) -> list[int] | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "all")):
        return None
    if isinstance(value, str):
        try:
            value = [int(v) for v in value.replace(" ", "").split(",") if v]
        except ValueError:
            raise UserError(f"sink_layers must be 'all' or comma-separated layer indices, got {value!r}") from None
    layers = sorted({int(v) for v in value})
    bad = [v for v in layers if not 0 <= v < num_layers]
    if bad or not layers:
        raise UserError(f"sink_layers {value!r}: layers must lie in 0..{num_layers - 1}")
    return layers


def sink_config_from_llama(llama_config: LlamaConfig, **knobs) -> SinkConfig:
    """A SinkConfig with ``llama_config``'s sizes and the given knobs
    (p_gen, p_mem, sink_layers ("all" | [ints] | "0,2"), sink_dropout, backbone_scale,
    hash_key, max_sources, ...)."""
    base = {k: v for k, v in llama_config.to_dict().items()
            if k not in ("model_type", "architectures", "transformers_version", "auto_map")}
    unknown = sorted(set(knobs) - set(SinkConfig.__dataclass_fields__))
    if unknown:
        raise UserError(f"unknown sink setting(s): {', '.join(unknown)}")
    knobs = dict(knobs)
    knobs["sink_layers"] = _parse_sink_layers(knobs.get("sink_layers"), llama_config.num_hidden_layers)
    _check_knobs(knobs)
    return SinkConfig(**{**base, **knobs})


def _check_knobs(knobs: Mapping) -> None:
    p_gen, p_mem = knobs.get("p_gen", 0.5), knobs.get("p_mem", 0.1)
    if not 0.0 <= p_gen < 1.0:
        raise UserError(f"p_gen must lie in [0, 1), got {p_gen}")
    if not 0.0 < p_mem <= 1.0:
        raise UserError(f"p_mem must lie in (0, 1], got {p_mem}")
    if not 0.0 <= knobs.get("sink_dropout", 0.0) <= 1.0:
        raise UserError(f"sink_dropout must lie in [0, 1], got {knobs['sink_dropout']}")
    if knobs.get("backbone_scale", "mean") not in BACKBONE_SCALES:
        raise UserError(f"backbone_scale must be one of {', '.join(BACKBONE_SCALES)}")
    if int(knobs.get("max_sources", 1)) < 1:
        raise UserError("max_sources must be positive")
    if knobs.get("inference_mode", "route") not in INFERENCE_MODES:
        raise UserError(f"inference_mode must be one of {', '.join(INFERENCE_MODES)}")
    if knobs.get("route_forgotten", "all") not in ROUTE_FORGOTTEN:
        raise UserError(f"route_forgotten must be one of {', '.join(ROUTE_FORGOTTEN)}")


# -- gating -----------------------------------------------------------------------------
class GatePlan:
    """Which units each token runs with, computed once per forward and per layer on demand.

    ``token_state`` indexes ``state_sources`` (a source id, BACKBONE or ALL_SINKS).
    """

    def __init__(self, model: "SinkModel", token_source: torch.Tensor):
        self.model = model
        self.state_sources, inverse = torch.unique(token_source, return_inverse=True)
        self.token_state = inverse.reshape(token_source.shape)
        # one state per row (the usual case) lets the gates broadcast over positions
        self.row_constant = bool((self.token_state == self.token_state[:, :1]).all())

    def gates_for(self, mlp: "SinkMLP", dtype: torch.dtype) -> torch.Tensor | None:
        if not mlp.has_sinks:
            return None
        rows = self.model.gate_rows(mlp, self.state_sources).to(dtype)
        if self.row_constant:
            return rows[self.token_state[:, 0]].unsqueeze(1)
        return rows[self.token_state]


class SinkMLP(LlamaMLP):
    """SwiGLU MLP whose hidden units are multiplied by per-token gates."""

    def __init__(self, config: SinkConfig, layer_idx: int):
        super().__init__(config)
        self.layer_idx = layer_idx
        self.has_sinks = config.layer_has_sinks(layer_idx)
        self.n_backbone = config.n_backbone_units() if self.has_sinks else config.intermediate_size
        self.n_sinks = config.intermediate_size - self.n_backbone
        # global index of this layer's first sink unit: each layer hashes distinct units
        self.first_unit = layer_idx * config.intermediate_size

    def forward(self, x: torch.Tensor, unit_gates: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.act_fn(self.gate_proj(x)) * self.up_proj(x)
        if unit_gates is not None:
            hidden = hidden * unit_gates
        return self.down_proj(hidden)


class SinkDecoderLayer(LlamaDecoderLayer):
    def __init__(self, config: SinkConfig, layer_idx: int):
        super().__init__(config, layer_idx)
        self.mlp = SinkMLP(config, layer_idx)

    def forward(self, hidden_states, attention_mask=None, position_ids=None, past_key_values=None,
                use_cache=False, position_embeddings=None, sink_plan: GatePlan | None = None, cache=None, **kwargs):
        if sink_plan is None:
            raise RuntimeError("SinkDecoderLayer needs a gate plan: call SinkModel, not the layer")
        residual = hidden_states
        hidden_states = self.input_layernorm(hidden_states)
        hidden_states, _ = self.self_attn(
            hidden_states=hidden_states, attention_mask=attention_mask, position_ids=position_ids,
            use_cache=use_cache, position_embeddings=position_embeddings,
            **cache_kwargs(pick_cache(cache, past_key_values)), **kwargs,
        )
        hidden_states = residual + hidden_states
        residual = hidden_states
        hidden_states = self.post_attention_layernorm(hidden_states)
        hidden_states = self.mlp(hidden_states, sink_plan.gates_for(self.mlp, hidden_states.dtype))
        return residual + hidden_states


class SinkPreTrainedModel(LlamaPreTrainedModel):
    config_class = SinkConfig
    config: SinkConfig
    _no_split_modules = ["SinkDecoderLayer"]
    _can_record_outputs = {"hidden_states": SinkDecoderLayer, "attentions": LlamaAttention}
    _can_compile_fullgraph = False    # the gate plan branches on data (unique sources, routing)


def _per_token(ids: torch.Tensor, length: int, what: str) -> torch.Tensor:
    """``[batch]`` or ``[batch, 1]`` ids broadcast over ``length`` positions; ``[batch, length]`` as is."""
    ids = torch.as_tensor(ids)
    if ids.dim() == 1:
        ids = ids.unsqueeze(1)
    if ids.dim() != 2:
        raise ValueError(f"{what} must be [batch] or [batch, seq], got shape {tuple(ids.shape)}")
    if ids.shape[1] == 1 and length != 1:
        return ids.expand(-1, length)
    if ids.shape[1] != length:
        raise ValueError(f"{what} has {ids.shape[1]} positions but the input has {length}")
    return ids


def _segments(doc_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """Segment index per token when some row packs several documents, else None.

    Padding runs become segments of their own, so no real token attends to them.
    """
    real = attention_mask.bool() if attention_mask is not None else torch.ones_like(doc_ids, dtype=torch.bool)
    changed = doc_ids[:, 1:] != doc_ids[:, :-1]
    doc_boundary = changed & real[:, 1:] & real[:, :-1]
    if not bool(doc_boundary.any()):
        return None
    boundary = doc_boundary | (real[:, 1:] != real[:, :-1])
    boundary = torch.cat([torch.zeros_like(boundary[:, :1]), boundary], dim=1)
    return boundary.long().cumsum(1)


def _positions_within(segments: torch.Tensor) -> torch.Tensor:
    index = torch.arange(segments.shape[1], device=segments.device).expand_as(segments)
    starts = torch.where(
        torch.cat([torch.ones_like(segments[:, :1], dtype=torch.bool), segments[:, 1:] != segments[:, :-1]], 1),
        index, torch.zeros_like(index),
    )
    return index - torch.cummax(starts, dim=1).values


class SinkModel(SinkPreTrainedModel, LlamaModel):
    """LlamaModel with sink MLPs, the router, and the gate plan built per forward."""

    def __init__(self, config: SinkConfig):
        # LlamaModel.__init__ would build Llama layers only to throw them away: skip to PreTrainedModel's
        super(LlamaModel, self).__init__(config)
        self.padding_idx = config.pad_token_id
        self.vocab_size = config.vocab_size
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList([SinkDecoderLayer(config, i) for i in range(config.num_hidden_layers)])
        self.norm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = LlamaRotaryEmbedding(config=config)
        self.gradient_checkpointing = False
        self.router = SourceRouter(config.router_size, config.vocab_size, config.hidden_size)
        self._all_rows_cache: dict = {}
        self._warned_unrouted = False
        self.post_init()

    # -- gate rows ----------------------------------------------------------------------
    def backbone_only_scale(self, mlp: SinkMLP) -> float:
        if self.config.backbone_scale == "none" or mlp.n_backbone == 0:
            return 1.0
        return (mlp.n_backbone + self.config.p_mem * mlp.n_sinks) / mlp.n_backbone

    def _membership(self, mlp: SinkMLP, sources: torch.Tensor) -> torch.Tensor:
        return sink_membership(self.config.hash_key, sources, mlp.first_unit, mlp.n_sinks, self.config.p_mem)

    def _all_mode_sinks(self, mlp: SinkMLP, device) -> torch.Tensor:
        """Float ``[n_sinks]`` gate of ``all`` mode: sinks of known, non-forgotten sources, rescaled."""
        key = (mlp.layer_idx, tuple(self.config.forgotten), self.config.router_size, str(device))
        cached = self._all_rows_cache.get(key)
        if cached is not None:
            return cached
        forgotten = torch.tensor(self.config.forgotten, dtype=torch.long, device=device)
        if self.router.fitted:
            kept = self.router.source_ids.to(device)
            kept = kept[~torch.isin(kept, forgotten)]
            on = self._membership(mlp, kept).any(0)
        else:   # no router: every sink a forgotten source does not own
            on = torch.ones(mlp.n_sinks, dtype=torch.bool, device=device)
        if forgotten.numel():
            on &= ~self._membership(mlp, forgotten).any(0)
        n_on = int(on.sum())
        scale = 1.0
        if self.config.backbone_scale == "mean" and n_on:
            scale = self.config.p_mem * mlp.n_sinks / n_on
        gate = on.float() * scale
        self._all_rows_cache[key] = gate
        return gate

    def gate_rows(self, mlp: SinkMLP, state_sources: torch.Tensor) -> torch.Tensor:
        """Float ``[n_states, intermediate_size]`` unit gates for each state."""
        device = state_sources.device
        rows = torch.ones(len(state_sources), mlp.n_backbone + mlp.n_sinks, device=device)
        sink_part = rows[:, mlp.n_backbone:]
        is_source = state_sources >= 0
        if bool(is_source.any()):
            sink_part[is_source] = self._membership(mlp, state_sources[is_source]).float()
        is_backbone = state_sources == BACKBONE
        sink_part[is_backbone] = 0.0
        rows[is_backbone, : mlp.n_backbone] = self.backbone_only_scale(mlp)
        is_all = state_sources == ALL_SINKS
        if bool(is_all.any()):
            sink_part[is_all] = self._all_mode_sinks(mlp, device)
        return rows

    def clear_gate_cache(self) -> None:
        self._all_rows_cache.clear()

    # -- which source each token runs with ------------------------------------------------
    def _route(self, input_ids, inputs_embeds, attention_mask) -> torch.Tensor:
        """Source id (or BACKBONE / ALL_SINKS) per row."""
        batch = inputs_embeds.shape[0]
        device = inputs_embeds.device
        if not self.router.fitted:
            if not self._warned_unrouted:
                log.warning("sink model has no fitted router: route mode runs every non-forgotten sink ('all')")
                self._warned_unrouted = True
            return torch.full((batch,), ALL_SINKS, dtype=torch.long, device=device)
        features = self.router.query_features(input_ids, inputs_embeds, attention_mask)
        similarity = self.router.similarities(features)
        sources = self.router.source_ids.to(device)
        forgotten = torch.isin(sources, torch.tensor(self.config.forgotten, dtype=torch.long, device=device))
        if self.config.route_forgotten == "nearest":
            similarity = similarity.masked_fill(forgotten, float("-inf"))
            routed = sources[similarity.argmax(-1)]
            if bool(forgotten.all()):
                routed = torch.full_like(routed, BACKBONE)
            return routed
        best = similarity.argmax(-1)
        fallback = torch.full_like(best, BACKBONE if self.config.route_forgotten == "backbone" else ALL_SINKS)
        surviving = similarity.masked_fill(forgotten, float("-inf"))
        nearest_surviving = surviving.argmax(-1)
        best_similarity = similarity.gather(1, best[:, None])[:, 0]
        shared = (surviving.gather(1, nearest_surviving[:, None])[:, 0]
                  >= self.config.route_shared_ratio * best_similarity.clamp(min=0.0))
        if bool(forgotten.all()):
            shared = torch.zeros_like(shared)
        routed = torch.where(shared, sources[nearest_surviving], fallback)
        return torch.where(forgotten[best], routed, sources[best])

    def _token_sources(self, input_ids, inputs_embeds, attention_mask, source_ids, segments,
                       past_key_values, past_len) -> torch.Tensor:
        batch, length = inputs_embeds.shape[:2]
        device = inputs_embeds.device
        mode = self.config.inference_mode
        if source_ids is not None:
            tokens = _per_token(source_ids.to(device), length, "source_ids").long()
            tokens = tokens.masked_fill(tokens < 0, BACKBONE)
            if self.training and self.config.sink_dropout > 0:
                documents = segments if segments is not None else torch.zeros_like(tokens)
                drop = torch.rand(batch, int(documents.max()) + 1, device=device) < self.config.sink_dropout
                tokens = tokens.masked_fill(torch.gather(drop, 1, documents), BACKBONE)
        elif mode == "on":
            if self.config.inference_source is None:
                raise ValueError("inference mode 'on' without a source: use set_inference_mode('on', source=...)")
            tokens = torch.full((batch, length), int(self.config.inference_source), dtype=torch.long, device=device)
        elif mode == "backbone":
            tokens = torch.full((batch, length), BACKBONE, dtype=torch.long, device=device)
        elif mode == "all":
            tokens = torch.full((batch, length), ALL_SINKS, dtype=torch.long, device=device)
        else:   # route: decided on the prompt, kept on the cache for the decoding steps
            routes = getattr(past_key_values, _ROUTES_ATTR, None) if past_len > 0 else None
            if routes is None or routes.shape[0] != batch:
                routes = self._route(input_ids, inputs_embeds, attention_mask)
                if past_key_values is not None:
                    setattr(past_key_values, _ROUTES_ATTR, routes)
            tokens = routes.to(device).unsqueeze(1).expand(batch, length)
        if self.config.forgotten:
            forgotten = torch.tensor(self.config.forgotten, dtype=torch.long, device=device)
            tokens = tokens.masked_fill(torch.isin(tokens, forgotten), BACKBONE)
        return tokens

    # -- forward ---------------------------------------------------------------------------
    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, use_cache=None, source_ids=None, document_ids=None, cache=None, **kwargs):
        # generate passes the cache as ``cache`` from transformers 5.24 on, ``past_key_values`` before
        past_key_values = pick_cache(cache, past_key_values)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        length = inputs_embeds.shape[1]
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if self.gradient_checkpointing and self.training:
            use_cache = False
        past_len = past_key_values.get_seq_length() if past_key_values is not None else 0
        padding_mask = attention_mask if attention_mask is not None and attention_mask.dim() == 2 else None

        # packing applies to cache-less forwards (training, scoring); a cache (generate) means one document
        segments = None
        doc_ids = document_ids if document_ids is not None else source_ids
        if doc_ids is not None and past_key_values is None:
            doc_ids = _per_token(doc_ids.to(inputs_embeds.device), length, "document_ids")
            segments = _segments(doc_ids, padding_mask[:, -length:] if padding_mask is not None else None)
        if segments is not None:
            # transformers builds the block-diagonal causal mask from restarting positions
            position_ids = _positions_within(segments)
            attention_mask, past_key_values, use_cache = None, None, False
        elif use_cache and past_key_values is None:
            past_key_values = DynamicCache(config=self.config)

        tokens = self._token_sources(input_ids, inputs_embeds, padding_mask, source_ids, segments,
                                     past_key_values, past_len)
        plan = GatePlan(self, tokens)
        return super().forward(input_ids=None, attention_mask=attention_mask, position_ids=position_ids,
                               inputs_embeds=inputs_embeds, use_cache=use_cache, sink_plan=plan,
                               **cache_kwargs(past_key_values), **kwargs)


class SinkForCausalLM(SinkPreTrainedModel, LlamaForCausalLM):
    """Causal LM with per-source sinks and the switch API (forget / restore / modes / router)."""

    def __init__(self, config: SinkConfig):
        super(LlamaForCausalLM, self).__init__(config)
        self.model = SinkModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, labels=None, use_cache=None, logits_to_keep=0,
                source_ids: torch.LongTensor | None = None, document_ids: torch.LongTensor | None = None,
                cache=None, **kwargs):
        r"""Llama forward plus ``source_ids`` (per token or per row; negative: no source) and
        ``document_ids`` (per token, for packed documents)."""
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                               inputs_embeds=inputs_embeds, labels=labels,
                               **cache_kwargs(pick_cache(cache, past_key_values)),
                               use_cache=use_cache, logits_to_keep=logits_to_keep, source_ids=source_ids,
                               document_ids=document_ids, **kwargs)

    def prepare_inputs_for_generation(self, input_ids, source_ids=None, document_ids=None, **kwargs):
        # generation treats the prompt as one document; source ids of new tokens repeat the last one
        inputs = super().prepare_inputs_for_generation(input_ids, **kwargs)
        if source_ids is not None:
            source_ids = torch.as_tensor(source_ids, device=input_ids.device)
            if source_ids.dim() == 2 and source_ids.shape[1] > 1:
                extra = input_ids.shape[1] - source_ids.shape[1]
                if extra > 0:
                    source_ids = torch.cat([source_ids, source_ids[:, -1:].expand(-1, extra)], dim=1)
                current = inputs.get("input_ids")
                current = current if current is not None else inputs["inputs_embeds"]
                source_ids = source_ids[:, -current.shape[1]:]
            inputs["source_ids"] = source_ids
        return inputs

    # -- switch API ------------------------------------------------------------------------
    @property
    def forgotten(self) -> list[int]:
        return list(self.config.forgotten)

    @property
    def known_sources(self) -> list[int] | None:
        """Sources the router was fitted on (None without a router)."""
        return self.model.router.known_sources() if self.model.router.fitted else None

    def check_sources(self, ids: Iterable[int] | int) -> list[int]:
        """Validated, sorted, de-duplicated source ids; UserError names the bad ones."""
        if isinstance(ids, torch.Tensor):
            ids = ids.reshape(-1).tolist()
        elif isinstance(ids, (int, str)):
            ids = [ids]
        checked: set[int] = set()
        for value in ids:
            try:
                if isinstance(value, bool):
                    raise TypeError
                value = operator.index(value)
            except TypeError:
                raise UserError(f"source ids must be integers, got {value!r}") from None
            if not 0 <= value < self.config.max_sources:
                raise UserError(f"unknown source id {value}: valid ids are 0..{self.config.max_sources - 1}")
            checked.add(value)
        known = self.known_sources
        if known is not None:
            unknown = sorted(checked - set(known))
            if unknown:
                raise UserError(f"unknown source id(s) {unknown[:10]}: the model's router knows "
                                f"{len(known)} sources ({min(known)}..{max(known)})")
        return sorted(checked)

    def forget(self, ids: Iterable[int] | int) -> list[int]:
        """Switch off these sources' sinks; forgetting twice is a no-op. Returns the newly forgotten ids."""
        ids = self.check_sources(ids)
        new = sorted(set(ids) - set(self.config.forgotten))
        self.config.forgotten = sorted(set(self.config.forgotten) | set(ids))
        self.model.clear_gate_cache()
        return new

    def restore(self, ids: Iterable[int] | int) -> list[int]:
        """Switch these sources' sinks back on. Restoring a source that is not forgotten is a
        no-op with a warning (so scripts can restore idempotently). Returns the restored ids."""
        ids = self.check_sources(ids)
        restored = sorted(set(ids) & set(self.config.forgotten))
        never = sorted(set(ids) - set(restored))
        if never:
            warnings.warn(f"source(s) {never[:10]} were not forgotten: nothing to restore", stacklevel=2)
        self.config.forgotten = sorted(set(self.config.forgotten) - set(restored))
        self.model.clear_gate_cache()
        return restored

    @property
    def inference_mode(self) -> str:
        return self.config.inference_mode

    def set_inference_mode(self, mode: str, source: int | None = None, route_forgotten: str | None = None,
                           route_shared_ratio: float | None = None) -> None:
        """``route`` | ``on`` (needs ``source``) | ``backbone`` | ``all``; saved with the config."""
        if mode not in INFERENCE_MODES:
            raise UserError(f"unknown inference mode {mode!r}; valid: {', '.join(INFERENCE_MODES)}")
        if mode == "on":
            if source is None:
                raise UserError("inference mode 'on' needs a source id")
            source = self.check_sources([source])[0]
        elif source is not None:
            raise UserError(f"inference mode {mode!r} takes no source id")
        if route_forgotten is not None and route_forgotten not in ROUTE_FORGOTTEN:
            raise UserError(f"route_forgotten must be one of {', '.join(ROUTE_FORGOTTEN)}")
        if route_shared_ratio is not None and not 0.0 <= route_shared_ratio:
            raise UserError(f"route_shared_ratio must be >= 0, got {route_shared_ratio}")
        if route_shared_ratio is not None:
            self.config.route_shared_ratio = float(route_shared_ratio)
        self.config.inference_mode = mode
        self.config.inference_source = source
        if route_forgotten is not None:
            self.config.route_forgotten = route_forgotten

    @contextlib.contextmanager
    def _temporary_mode(self) -> Iterator[None]:
        saved = (self.config.inference_mode, self.config.inference_source, self.config.route_forgotten,
                 list(self.config.forgotten))
        try:
            yield
        finally:
            (self.config.inference_mode, self.config.inference_source, self.config.route_forgotten,
             self.config.forgotten) = saved
            self.model.clear_gate_cache()

    @contextlib.contextmanager
    def on(self, source: int) -> Iterator["SinkForCausalLM"]:
        """Run with one source's sinks (unless it is forgotten) inside the block."""
        with self._temporary_mode():
            self.set_inference_mode("on", source)
            yield self

    @contextlib.contextmanager
    def exclude(self, ids: Iterable[int] | int) -> Iterator["SinkForCausalLM"]:
        """Inside the block, ``ids`` are forgotten too and every query goes to its nearest
        surviving source."""
        with self._temporary_mode():
            self.forget(ids)
            self.set_inference_mode("route", route_forgotten="nearest")
            yield self

    @contextlib.contextmanager
    def mode(self, mode: str, source: int | None = None) -> Iterator["SinkForCausalLM"]:
        with self._temporary_mode():
            self.set_inference_mode(mode, source)
            yield self

    @torch.no_grad()
    def fit_router(self, texts_by_source: Mapping[int, Sequence[str]], tokenizer) -> None:
        """Fit the router on each source's training texts (after training: it reads the
        trained embedding table). Replaces any earlier router."""
        if not texts_by_source:
            raise UserError("fit_router needs texts for at least one source")
        for source in texts_by_source:
            if not 0 <= int(source) < self.config.max_sources:
                raise UserError(f"unknown source id {source}: valid ids are 0..{self.config.max_sources - 1}")
        token_ids = {
            int(source): tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []
            for source, texts in texts_by_source.items()
        }
        self.model.router.fit(self.get_input_embeddings().weight, token_ids)
        self.config.router_size = len(token_ids)
        self.model.clear_gate_cache()

    @torch.no_grad()
    def route(self, texts: Sequence[str], tokenizer) -> list[int]:
        """The source each text is routed to in the current config (-1: backbone, -2: all sinks)."""
        encoded = tokenizer(list(texts), add_special_tokens=False, return_tensors="pt", padding=True)
        input_ids = encoded["input_ids"].to(self.device)
        embeds = self.get_input_embeddings()(input_ids)
        routes = self.model._route(input_ids, embeds, encoded["attention_mask"].to(self.device))
        return [int(r) for r in routes.tolist()]


def texts_by_source(docs: Iterable[Mapping]) -> dict[int, list[str]]:
    """``[{"source_id", "text"}]`` (corpus documents) -> ``{source_id: [texts]}`` for ``fit_router``."""
    grouped: dict[int, list[str]] = {}
    for doc in docs:
        grouped.setdefault(int(doc["source_id"]), []).append(doc["text"])
    return grouped


def is_sink_model(model) -> bool:
    return isinstance(model, SinkForCausalLM)


AutoConfig.register(SinkConfig.model_type, SinkConfig, exist_ok=True)
AutoModel.register(SinkConfig, SinkModel, exist_ok=True)
AutoModelForCausalLM.register(SinkConfig, SinkForCausalLM, exist_ok=True)
