"""Native unlearning by design: a Llama decoder whose MLPs hold a backbone plus per-source sinks.

Each SwiGLU MLP's hidden units are split: the first ``p_gen`` share is the backbone
(always on), the rest is a bank of sinks. Source ``s`` owns the sinks whose keyed
hash of ``(s, unit)`` falls under ``p_mem`` (``sink_hash``). While training, every
token runs the backbone plus its source's sinks; forgetting a source switches its
sinks off at inference: no weight changes, reversible, O(1).

This module is the architecture's public face; the pieces, bottom up:

- :mod:`obliviate.models.sink_config`: ``SinkConfig`` (knobs and switch state),
  ``sink_config_from_llama``, the token states ``BACKBONE`` / ``ALL_SINKS``.
- :mod:`obliviate.models.sink_hash`: which sink units each source owns (keyed hash).
- :mod:`obliviate.models.router`: ``SourceRouter``, the nearest-source query router.
- :mod:`obliviate.models.sink_gates`: ``SinkMLP`` and the unit gates (and their
  scaling) each token state runs with; ``GatePlan``, one per forward.
- :mod:`obliviate.models.sink_routing`: which state each token runs with (explicit
  ``source_ids``, the inference mode, route mode's decision), packed-document segments.
- :mod:`obliviate.models.sink_switch`: the switch API (forget / restore / inference
  modes / ``fit_router`` / ``route``), mixed into the causal LM.
- :mod:`obliviate.models.sink_modeling`: ``SinkModel`` and ``SinkForCausalLM``, and their
  registration with transformers' Auto classes (on import, so ``from_pretrained`` works).
"""

from obliviate.models.sink_config import (
    ALL_SINKS,
    BACKBONE,
    BACKBONE_SCALES,
    INFERENCE_MODES,
    ROUTE_FORGOTTEN,
    SinkConfig,
    sink_config_from_llama,
)
from obliviate.models.sink_gates import GatePlan, SinkGates, SinkMLP
from obliviate.models.sink_modeling import (
    SinkDecoderLayer,
    SinkForCausalLM,
    SinkModel,
    SinkPreTrainedModel,
    is_sink_model,
)
from obliviate.models.sink_routing import SinkRouting
from obliviate.models.sink_switch import SinkSwitch, texts_by_source

__all__ = [
    "ALL_SINKS", "BACKBONE", "BACKBONE_SCALES", "INFERENCE_MODES", "ROUTE_FORGOTTEN",
    "GatePlan", "SinkConfig", "SinkDecoderLayer", "SinkForCausalLM", "SinkGates", "SinkMLP", "SinkModel",
    "SinkPreTrainedModel", "SinkRouting", "SinkSwitch",
    "is_sink_model", "sink_config_from_llama", "texts_by_source",
]
