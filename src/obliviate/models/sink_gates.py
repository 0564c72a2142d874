"""Gating: the sink MLP's unit layout and the unit gates each token state runs with.

Each SwiGLU MLP's hidden units are split: the first ``p_gen`` share is the backbone
(always on), the rest is a bank of sinks. Source ``s`` owns the sinks whose keyed hash
of ``(s, unit)`` falls under ``p_mem`` (:mod:`obliviate.models.sink_hash`). A token
state (a source id, ``BACKBONE`` or ``ALL_SINKS``, decided by
:mod:`obliviate.models.sink_routing`) becomes one row of unit gates per MLP; the hidden
units are multiplied by it.

Scaling (``backbone_scale``). A source trains with ``n_backbone + p_mem * n_sinks``
units on in expectation. ``"mean"`` (default) keeps the expected sum of active units
unchanged, as inverted dropout does: backbone-only tokens (sink-dropout sequences in
training and ``backbone`` mode, forgotten or source-less tokens at inference)
multiply backbone units by ``(n_backbone + p_mem * n_sinks) / n_backbone``; ``all``
mode multiplies its ``n_on`` active sinks by ``p_mem * n_sinks / n_on``. ``"none"``
applies no rescaling. Training and inference use the same factor, so with
sink-dropout the model learns the scaled backbone it will run at inference.
"""

from __future__ import annotations

import torch
from transformers.models.llama.modeling_llama import LlamaMLP

from obliviate.models.router import SourceRouter
from obliviate.models.sink_config import ALL_SINKS, BACKBONE, SinkConfig
from obliviate.models.sink_hash import sink_membership


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


class SinkGates:
    """Unit gates of a sink MLP for each token state, under the config's current switch
    state (forgotten sources, router). ``all``-mode rows are cached: call ``clear`` when
    the switch state changes."""

    def __init__(self, config: SinkConfig, router: SourceRouter):
        self.config = config
        self.router = router
        self._all_mode_cache: dict = {}

    def backbone_only_scale(self, mlp: SinkMLP) -> float:
        if self.config.backbone_scale == "none" or mlp.n_backbone == 0:
            return 1.0
        return (mlp.n_backbone + self.config.p_mem * mlp.n_sinks) / mlp.n_backbone

    def membership(self, mlp: SinkMLP, sources: torch.Tensor) -> torch.Tensor:
        """Bool ``[len(sources), n_sinks]``: which of ``mlp``'s sinks each source owns."""
        return sink_membership(self.config.hash_key, sources, mlp.first_unit, mlp.n_sinks, self.config.p_mem)

    def all_mode_sinks(self, mlp: SinkMLP, device) -> torch.Tensor:
        """Float ``[n_sinks]`` gate of ``all`` mode: sinks of known, non-forgotten sources, rescaled."""
        key = (mlp.layer_idx, tuple(self.config.forgotten), self.config.router_size, str(device))
        cached = self._all_mode_cache.get(key)
        if cached is not None:
            return cached
        forgotten = torch.tensor(self.config.forgotten, dtype=torch.long, device=device)
        if self.router.fitted:
            kept = self.router.source_ids.to(device)
            kept = kept[~torch.isin(kept, forgotten)]
            on = self.membership(mlp, kept).any(0)
        else:   # no router: every sink a forgotten source does not own
            on = torch.ones(mlp.n_sinks, dtype=torch.bool, device=device)
        if forgotten.numel():
            on &= ~self.membership(mlp, forgotten).any(0)
        n_on = int(on.sum())
        scale = 1.0
        if self.config.backbone_scale == "mean" and n_on:
            scale = self.config.p_mem * mlp.n_sinks / n_on
        gate = on.float() * scale
        self._all_mode_cache[key] = gate
        return gate

    def rows(self, mlp: SinkMLP, state_sources: torch.Tensor) -> torch.Tensor:
        """Float ``[n_states, intermediate_size]`` unit gates for each state."""
        device = state_sources.device
        rows = torch.ones(len(state_sources), mlp.n_backbone + mlp.n_sinks, device=device)
        sink_part = rows[:, mlp.n_backbone:]
        is_source = state_sources >= 0
        if bool(is_source.any()):
            sink_part[is_source] = self.membership(mlp, state_sources[is_source]).float()
        is_backbone = state_sources == BACKBONE
        sink_part[is_backbone] = 0.0
        rows[is_backbone, : mlp.n_backbone] = self.backbone_only_scale(mlp)
        is_all = state_sources == ALL_SINKS
        if bool(is_all.any()):
            sink_part[is_all] = self.all_mode_sinks(mlp, device)
        return rows

    def clear(self) -> None:
        self._all_mode_cache.clear()


class GatePlan:
    """Which units each token runs with, computed once per forward and per layer on demand.

    ``token_state`` indexes ``state_sources`` (a source id, BACKBONE or ALL_SINKS).
    """

    def __init__(self, gates: SinkGates, token_source: torch.Tensor):
        self.gates = gates
        self.state_sources, inverse = torch.unique(token_source, return_inverse=True)
        self.token_state = inverse.reshape(token_source.shape)
        # one state per row (the usual case) lets the gates broadcast over positions
        self.row_constant = bool((self.token_state == self.token_state[:, :1]).all())

    def gates_for(self, mlp: SinkMLP, dtype: torch.dtype) -> torch.Tensor | None:
        if not mlp.has_sinks:
            return None
        rows = self.gates.rows(mlp, self.state_sources).to(dtype)
        if self.row_constant:
            return rows[self.token_state[:, 0]].unsqueeze(1)
        return rows[self.token_state]
