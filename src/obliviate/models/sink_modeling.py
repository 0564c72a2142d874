"""The sink model classes: a Llama decoder with sink MLPs, and its causal LM with the switch API.

Per forward, :class:`SinkModel` decides each token's state (:class:`SinkRouting`), builds
one :class:`GatePlan` from it and hands it to every decoder layer, whose MLP multiplies its
hidden units by the plan's gates (:class:`SinkGates`).

Packed documents: when a row holds more than one document (``packed_segments``), positions
restart at each document and the attention mask is handed to transformers as packed
sequences (``position_ids`` restarting, no 2D mask: transformers' own
``find_packed_sequence_indices`` path builds the block-diagonal causal mask for every
attention implementation); padding becomes its own segment. Such a forward runs without a
KV cache; ``generate`` treats its prompt as one document.

Importing this module registers ``obliviate_sinks`` with transformers' Auto classes, so
``AutoModelForCausalLM.from_pretrained`` reloads a saved sink model without remote code.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, DynamicCache
from transformers.models.llama.modeling_llama import (
    LlamaAttention,
    LlamaDecoderLayer,
    LlamaForCausalLM,
    LlamaModel,
    LlamaPreTrainedModel,
    LlamaRMSNorm,
    LlamaRotaryEmbedding,
)

from obliviate.models.hf_compat import cache_kwargs, pick_cache
from obliviate.models.router import SourceRouter
from obliviate.models.sink_config import SinkConfig
from obliviate.models.sink_gates import GatePlan, SinkGates, SinkMLP
from obliviate.models.sink_routing import SinkRouting, packed_segments, per_token, positions_within
from obliviate.models.sink_switch import SinkSwitch


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
        # both read the config's switch state, which the causal LM's switch API changes
        self.gates = SinkGates(self.config, self.router)
        self.routing = SinkRouting(self.config, self.router)
        self.post_init()

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
            doc_ids = per_token(doc_ids.to(inputs_embeds.device), length, "document_ids")
            segments = packed_segments(doc_ids, padding_mask[:, -length:] if padding_mask is not None else None)
        if segments is not None:
            # transformers builds the block-diagonal causal mask from restarting positions
            position_ids = positions_within(segments)
            attention_mask, past_key_values, use_cache = None, None, False
        elif use_cache and past_key_values is None:
            past_key_values = DynamicCache(config=self.config)

        tokens = self.routing.token_sources(input_ids, inputs_embeds, padding_mask, source_ids, segments,
                                            past_key_values, past_len, training=self.training)
        plan = GatePlan(self.gates, tokens)
        return super().forward(input_ids=None, attention_mask=attention_mask, position_ids=position_ids,
                               inputs_embeds=inputs_embeds, use_cache=use_cache, sink_plan=plan,
                               **cache_kwargs(past_key_values), **kwargs)


class SinkForCausalLM(SinkSwitch, SinkPreTrainedModel, LlamaForCausalLM):
    """Causal LM with per-source sinks and the switch API (forget / restore / modes / router:
    :class:`~obliviate.models.sink_switch.SinkSwitch`)."""

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


def is_sink_model(model) -> bool:
    return isinstance(model, SinkForCausalLM)


AutoConfig.register(SinkConfig.model_type, SinkConfig, exist_ok=True)
AutoModel.register(SinkConfig, SinkModel, exist_ok=True)
AutoModelForCausalLM.register(SinkConfig, SinkForCausalLM, exist_ok=True)
