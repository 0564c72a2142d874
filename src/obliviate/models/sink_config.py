"""The sink architecture's config: LlamaConfig plus the sink knobs and the switch state.

The knobs (``p_gen``, ``p_mem``, ``sink_layers``, ``sink_dropout``, ``backbone_scale``,
``hash_key``, ``max_sources``) fix the architecture when the model is built; the switch
state (``forgotten``, ``inference_mode``, ``inference_source``, ``route_forgotten``,
``route_shared_ratio``, ``router_size``) is changed by the switch API
(:mod:`obliviate.models.sink_switch`) and saved with the config, so an unlearned model
reloads unlearned.
"""

from __future__ import annotations

from typing import Mapping

from huggingface_hub.dataclasses import strict
from transformers import LlamaConfig

from obliviate.errors import UserError

INFERENCE_MODES = ("route", "on", "backbone", "all")
ROUTE_FORGOTTEN = ("backbone", "nearest", "all")
BACKBONE_SCALES = ("mean", "none")

# Token states besides real (non-negative) source ids: what routing hands to gating.
BACKBONE = -1      # backbone units only (rescaled)
ALL_SINKS = -2     # every sink of a known, non-forgotten source (rescaled)


@strict
class SinkConfig(LlamaConfig):
    """LlamaConfig plus the sink architecture, its training knobs and the switch state."""

    model_type = "obliviate_sinks"

    p_gen: float = 0.5                       # share of MLP units in the always-on backbone
    p_mem: float = 0.1                       # chance that a sink unit belongs to a given source
    sink_layers: list[int] | None = None     # layers whose MLPs carry sinks (None: all)
    sink_dropout: float = 0.05               # share of training documents run backbone-only
    backbone_scale: str = "mean"             # "mean" | "none" (see obliviate.models.sink_gates)
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
