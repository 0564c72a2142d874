"""Routing: which source (token state) each token runs with, and packed-document segments.

Explicit ``source_ids`` (per token, ``[batch, seq]``; ``[batch]`` for one per row)
override the inference mode; negative ids mean "no source" (backbone only). In
training, ``sink_dropout`` of the documents run backbone-only. A forgotten source's
sinks are never on, whatever the mode or the ids passed.

Without ids, the mode decides (``on``: one source; ``backbone``; ``all``; ``route``:
each row goes to its nearest training source, ``SourceRouter``). Route mode with the
nearest source forgotten: if the best surviving source is at least
``route_shared_ratio`` as similar, the query is about knowledge other sources share and
goes to that source; otherwise ``route_forgotten`` decides: every surviving sink
(``"all"``), backbone-only (``"backbone"``), or always the nearest surviving source
(``"nearest"``).

Routing reads the whole input of a forward: in ``generate`` that is the prompt (the
decision is kept on the KV cache for the decoding steps; without a cache each step
routes on everything so far), in a teacher-forced forward the question and answer.

Packed documents: documents are told apart by ``document_ids`` or, without them, by
changes of source id. When a row holds more than one document, ``packed_segments``
numbers them (padding becomes its own segment) and ``positions_within`` restarts the
positions at each document, from which transformers builds the block-diagonal causal
mask (see :class:`obliviate.models.sink_modeling.SinkModel`).
"""

from __future__ import annotations

import logging

import torch

from obliviate.models.router import SourceRouter
from obliviate.models.sink_config import ALL_SINKS, BACKBONE, SinkConfig

log = logging.getLogger(__name__)

_ROUTES_ATTR = "_obliviate_sink_routes"   # routing decision kept on a generation cache


def per_token(ids: torch.Tensor, length: int, what: str) -> torch.Tensor:
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


def packed_segments(doc_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor | None:
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


def positions_within(segments: torch.Tensor) -> torch.Tensor:
    """Position ids restarting at 0 at the start of each segment."""
    index = torch.arange(segments.shape[1], device=segments.device).expand_as(segments)
    starts = torch.where(
        torch.cat([torch.ones_like(segments[:, :1], dtype=torch.bool), segments[:, 1:] != segments[:, :-1]], 1),
        index, torch.zeros_like(index),
    )
    return index - torch.cummax(starts, dim=1).values


class SinkRouting:
    """The token states of a forward, from the explicit ids or the config's inference mode."""

    def __init__(self, config: SinkConfig, router: SourceRouter):
        self.config = config
        self.router = router
        self.warned_unrouted = False

    def route(self, input_ids, inputs_embeds, attention_mask) -> torch.Tensor:
        """Source id (or BACKBONE / ALL_SINKS) per row."""
        batch = inputs_embeds.shape[0]
        device = inputs_embeds.device
        if not self.router.fitted:
            if not self.warned_unrouted:
                log.warning("sink model has no fitted router: route mode runs every non-forgotten sink ('all')")
                self.warned_unrouted = True
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

    def token_sources(self, input_ids, inputs_embeds, attention_mask, source_ids, segments, past_key_values,
                      past_len: int, training: bool) -> torch.Tensor:
        """``[batch, seq]`` token states (source id, BACKBONE or ALL_SINKS) of one forward."""
        batch, length = inputs_embeds.shape[:2]
        device = inputs_embeds.device
        mode = self.config.inference_mode
        if source_ids is not None:
            tokens = per_token(source_ids.to(device), length, "source_ids").long()
            tokens = tokens.masked_fill(tokens < 0, BACKBONE)
            if training and self.config.sink_dropout > 0:
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
                routes = self.route(input_ids, inputs_embeds, attention_mask)
                if past_key_values is not None:
                    setattr(past_key_values, _ROUTES_ATTR, routes)
            tokens = routes.to(device).unsqueeze(1).expand(batch, length)
        if self.config.forgotten:
            forgotten = torch.tensor(self.config.forgotten, dtype=torch.long, device=device)
            tokens = tokens.masked_fill(torch.isin(tokens, forgotten), BACKBONE)
        return tokens
