"""Purge: a sink model's forgotten sources cut out of the weights, exported as a stock Llama.

Forgetting a source (``SinkForCausalLM.forget``) only lists it in ``config.forgotten``:
the files keep every sink weight, and whoever holds them can delete that line and get
the source back. ``purge_sinks`` is the export for released weights. It fixes the gates
of inference mode ``all`` (:meth:`SinkGates.rows` for the ``ALL_SINKS`` state: backbone
units at gate 1.0, every sink of a known, non-forgotten source at ``p_mem * n_sinks /
n_on`` under ``backbone_scale="mean"``, 1.0 under ``"none"``, every other sink at 0), folds
each layer's unit gates into its ``down_proj`` columns, and deletes every unit whose gate
is 0: the units a forgotten source owns (even when a kept source owns them too: ``all``
mode runs them for nobody) and, with a fitted router, the units no known source owns.
Layers without sinks keep every unit at gate 1.0. The router (per-source centroids of the
training texts, forgotten sources included) is not exported.

Llama has one ``intermediate_size`` for every layer: a layer that keeps fewer units than
the widest one is padded with all-zero units (zero ``gate_proj`` / ``up_proj`` rows and
biases, zero ``down_proj`` columns), each of which contributes exactly 0. The export runs
exactly like the sink model in ``all`` mode with the same forgotten set (up to float
rounding of the folded gates). Every other weight (embeddings, attention, norms,
``lm_head``, the tie of ``lm_head`` to the embeddings) is copied unchanged.

The exported config is a plain ``LlamaConfig`` (``model_type`` ``llama``): it loads with
``AutoModelForCausalLM.from_pretrained`` in a Python that never imports obliviate, without
remote code. It carries one extra field, ``obliviate_purge`` (:data:`PURGE_FIELD`): the
purged source ids, the units each layer kept, and the intermediate size before. What the
purge removes and what it cannot (knowledge that co-adapted into the backbone):
``docs/native-threat-model.md``.

``purge_sinks_routed`` is the second export, for released weights that keep route mode (a
stock Llama cannot send each query to its source's sinks: on tiny the ``all``-mode export
keeps 0.011 of the kept sources' unique facts, route mode 0.996). It is a copy of the sink
model (same class, needs obliviate to load) in which every sink unit a purged source owns,
shared units included, has its ``gate_proj`` / ``up_proj`` rows (and biases) and its
``down_proj`` column set to exactly 0 in every sink layer, and the purged sources are
dropped from the router (:meth:`SourceRouter.drop_sources`: no query can be routed to
them, ``config.router_size`` shrinks). ``config.forgotten`` keeps listing them and the
config carries the purge record (:data:`PURGE_FIELD`, ``"mode": "route"``). ``restore``
of a purged source is refused when the model has a router (the router no longer knows the
id: UserError); without a router it only edits the switch line, and brings nothing back:
the weights are gone. Deleting ``forgotten`` or the record from config.json brings nothing
back either.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Iterable

import torch
from safetensors import SafetensorError, safe_open
from transformers import LlamaConfig, LlamaForCausalLM

from obliviate.errors import UserError
from obliviate.io import read_json
from obliviate.models.loading import check_model_dir
from obliviate.models.sink_config import ALL_SINKS, SinkConfig
from obliviate.models.sink_gates import SinkGates, SinkMLP
from obliviate.models.sink_modeling import SinkForCausalLM, is_sink_model

PURGE_FIELD = "obliviate_purge"   # the exported config's record of the purge
PURGE_MODE = "all"                # the fixed-gate inference mode the export reproduces
ROUTED_PURGE_MODE = "route"       # the record's mode of the routed export (a sink model, routing kept)

# SinkConfig fields a LlamaConfig does not have (the sink knobs and the switch state)
_SINK_ONLY_FIELDS = frozenset(SinkConfig.__dataclass_fields__) - frozenset(LlamaConfig.__dataclass_fields__)
_NOT_COPIED = frozenset({"model_type", "architectures", "transformers_version", "auto_map", "_name_or_path"})


def not_purgeable_reason(model_type: str | None, purge_record=None) -> str | None:
    """Why a model of this type cannot be purged (None: it can): shared by ``purge_sinks`` and
    the command line's check of a config.json before any weight is loaded."""
    if model_type == SinkConfig.model_type:
        return None
    if purge_record is not None:
        return "it is already purged (a stock Llama exported by obliviate purge: it has no sinks left to remove)"
    return (f"purge needs a sink model (trained with --arch sinks); this is a {model_type!r} model, "
            "which has no per-source sinks to remove")


def purge_request(model, sources: Iterable[int] | None) -> list[int]:
    """Every source id a purge of ``model`` with ``sources`` removes (sorted); UserError for
    unknown ids, or when there is nothing to purge."""
    extra = model.check_sources([] if sources is None else sources)   # unknown ids: UserError
    purged = sorted(set(model.forgotten) | set(extra))
    if not purged:
        raise UserError("nothing to purge: the model has no forgotten sources and none were given "
                        "(forget some first, or name them: --forget-sources IDS / --forget SPLIT --world DIR)")
    return purged


_ROUTER_SOURCES = "model.router.source_ids"


def _saved_tensor(model_dir: Path, name: str) -> torch.Tensor | None:
    """One tensor of a saved model's safetensors (sharded or not), read alone; None if absent
    or unreadable (loading the model then says what is wrong)."""
    try:
        index = model_dir / "model.safetensors.index.json"
        if index.is_file():
            shard = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).get(name)
            files = [model_dir / shard] if shard else []
        else:
            files = sorted(model_dir.glob("*.safetensors"))
        for file in files:
            with safe_open(str(file), framework="pt") as handle:
                if name in handle.keys():
                    return handle.get_tensor(name)
    except (OSError, ValueError, SafetensorError):
        return None
    return None


def check_saved_purge(model_dir: str | os.PathLike, sources: Iterable[int] | None,
                      keep_routing: bool = False) -> list[int]:
    """``purge_request`` (``routed_purge_request`` with ``keep_routing``: the ids it newly
    purges) for a saved sink model, before any weight is loaded: reads its config.json and
    the router's source ids alone (the command line's cheap check). Also UserError when the
    directory holds no model, or a model that is not a sink model."""
    model_dir = Path(model_dir)
    check_model_dir(model_dir)
    data = read_json(model_dir / "config.json", "model config")
    data = data if isinstance(data, dict) else {}
    reason = not_purgeable_reason(data.get("model_type"), data.get(PURGE_FIELD))
    if reason is not None:
        raise UserError(f"cannot purge {model_dir}: {reason}")
    try:
        config = SinkConfig.from_pretrained(str(model_dir))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise UserError(f"cannot read the sink model config in {model_dir}: {str(exc).splitlines()[0]}") from None
    with torch.device("meta"):
        skeleton = SinkForCausalLM(config)   # no memory: only its switch state and router ids are read
    known = _saved_tensor(model_dir, _ROUTER_SOURCES) if config.router_size else None
    if known is not None:
        skeleton.model.router.source_ids = known.to(torch.long)
    else:   # no router saved, or unreadable: the ids are checked again once the model is loaded
        skeleton.model.router.source_ids = torch.zeros(0, dtype=torch.long)
    if keep_routing:
        return routed_purge_request(skeleton, sources)[0]
    return purge_request(skeleton, sources)


def routed_purge_request(model, sources: Iterable[int] | None) -> tuple[list[int], list[int]]:
    """``(new, before)``: the source ids a routed purge of ``model`` with ``sources`` removes
    now (its forgotten ones plus ``sources``, less those an earlier routed purge removed) and
    those removed before (the config's purge record). UserError for unknown ids, for an id
    already purged, when nothing new is left to purge, or when the purge would leave the
    router with no source."""
    record = getattr(model.config, PURGE_FIELD, None) or {}
    before = sorted(int(s) for s in record.get("purged_sources", []))
    if sources is not None:
        asked = sources.reshape(-1).tolist() if isinstance(sources, torch.Tensor) else (
            [sources] if isinstance(sources, (int, str)) else list(sources))
        again = sorted({int(s) for s in asked if isinstance(s, int) and not isinstance(s, bool) and s in before})
        if again:
            raise UserError(f"source(s) {again[:10]} are already purged from this model (their sink weights are "
                            "zero and the router no longer knows them): nothing to purge again")
        sources = asked
    if not (set(model.forgotten) | set(sources or [])) - set(before):
        raise UserError(f"nothing to purge: the model's forgotten sources {before[:10]} are already purged; "
                        "name more sources to purge (--forget-sources IDS / --forget SPLIT --world DIR)")
    new = sorted(set(purge_request(model, sources)) - set(before))
    known = model.known_sources
    if known is not None and not set(known) - set(new):
        raise UserError("a routed purge needs at least one source left in the router: these ids are every source "
                        "it knows (export a stock Llama without --keep-routing instead)")
    return new, before


def all_mode_unit_gates(model, forgotten: Iterable[int]) -> list[torch.Tensor]:
    """Float32 ``[intermediate_size]`` unit gates of ``all`` mode per layer, with ``forgotten``
    switched off (the model's own switch state is not changed)."""
    config = copy.deepcopy(model.config)
    config.forgotten = sorted({int(s) for s in forgotten})
    gates = SinkGates(config, model.model.router)
    rows = []
    for layer in model.model.layers:
        mlp: SinkMLP = layer.mlp
        device = mlp.down_proj.weight.device
        if mlp.has_sinks:
            row = gates.rows(mlp, torch.tensor([ALL_SINKS], device=device))[0]
        else:
            row = torch.ones(mlp.n_backbone + mlp.n_sinks, device=device)
        rows.append(row.float())
    return rows


@torch.no_grad()
def _purged_mlp(mlp: SinkMLP, gate: torch.Tensor, width: int) -> dict[str, torch.Tensor]:
    """The layer's MLP tensors with the zero-gate units deleted, the gates folded into
    ``down_proj`` and ``width - kept`` all-zero units appended."""
    kept = torch.nonzero(gate != 0, as_tuple=True)[0]
    pad = width - kept.numel()
    tensors = {}
    for name in ("gate_proj", "up_proj"):
        linear = getattr(mlp, name)
        rows = linear.weight[kept]
        tensors[f"{name}.weight"] = torch.cat([rows, rows.new_zeros(pad, rows.shape[1])]).clone()
        if linear.bias is not None:
            bias = linear.bias[kept]
            tensors[f"{name}.bias"] = torch.cat([bias, bias.new_zeros(pad)]).clone()
    down = mlp.down_proj.weight
    columns = (down[:, kept].float() * gate[kept].to(down.device)).to(down.dtype)
    tensors["down_proj.weight"] = torch.cat([columns, columns.new_zeros(columns.shape[0], pad)], dim=1)
    if mlp.down_proj.bias is not None:
        tensors["down_proj.bias"] = mlp.down_proj.bias.clone()
    return tensors


def _llama_config(config: SinkConfig, intermediate_size: int, record: dict) -> LlamaConfig:
    values = {k: v for k, v in config.to_dict().items() if k not in _SINK_ONLY_FIELDS | _NOT_COPIED}
    values["intermediate_size"] = intermediate_size
    llama = LlamaConfig(**values)
    llama.architectures = ["LlamaForCausalLM"]
    setattr(llama, PURGE_FIELD, record)
    return llama


def _require_sink_model(model) -> None:
    if not is_sink_model(model):
        config = getattr(model, "config", None)
        reason = not_purgeable_reason(getattr(config, "model_type", None), getattr(config, PURGE_FIELD, None))
        raise UserError(f"cannot purge a {type(model).__name__}: {reason}")


def purge_sinks(model, sources: Iterable[int] | None = None) -> LlamaForCausalLM:
    """A stock ``LlamaForCausalLM`` without the forgotten sources' sink units (see the module
    docstring). ``sources``: ids to purge besides ``model.forgotten`` (validated like
    ``forget``; the model itself is not changed). Runs exactly like ``model`` in ``all`` mode
    with those sources forgotten too.

    UserError (one line): not a sink model (a dense or an already purged model), nothing
    forgotten and no ``sources``, unknown source ids.
    """
    _require_sink_model(model)
    purged = purge_request(model, sources)
    gates = all_mode_unit_gates(model, purged)
    kept = [int((gate != 0).sum()) for gate in gates]
    width = max(kept)
    record = {
        "purged_sources": purged,
        "mode": PURGE_MODE,
        "backbone_scale": model.config.backbone_scale,
        "units_kept": kept,
        "intermediate_size_before": int(model.config.intermediate_size),
        "padded_layers": [i for i, n in enumerate(kept) if n < width],
    }
    config = _llama_config(model.config, width, record)

    state = {}
    for name, tensor in model.state_dict().items():
        if name.startswith("model.router.") or ".mlp." in name:
            continue
        state[name] = tensor.detach().clone()
    for index, (layer, gate) in enumerate(zip(model.model.layers, gates)):
        for name, tensor in _purged_mlp(layer.mlp, gate, width).items():
            state[f"model.layers.{index}.mlp.{name}"] = tensor
    tied = bool(config.tie_word_embeddings)
    if tied:
        state.pop("lm_head.weight", None)

    with torch.device("meta"):
        dense = LlamaForCausalLM(config)
    missing, unexpected = dense.load_state_dict(state, strict=False, assign=True)
    if unexpected or set(missing) - ({"lm_head.weight"} if tied else set()):
        raise RuntimeError(f"purge: the exported Llama does not match the sink model's weights "
                           f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})")
    if tied:
        dense.lm_head.weight = dense.model.embed_tokens.weight
    # non-persistent buffers (rotary frequencies) are not in a state dict: copy them
    source_buffers = dict(model.named_buffers())
    for name, buffer in list(dense.named_buffers()):
        if buffer.is_meta:
            module_name, _, attr = name.rpartition(".")
            dense.get_submodule(module_name)._buffers[attr] = source_buffers[name].detach().clone()
    left = [name for name, t in [*dense.named_parameters(), *dense.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"purge: tensors left unset in the export: {left[:5]}")
    if model.generation_config is not None:
        dense.generation_config = copy.deepcopy(model.generation_config)
    dense.train(model.training)
    return dense


def owned_unit_masks(model, sources: Iterable[int]) -> list[torch.Tensor]:
    """Bool ``[intermediate_size]`` per layer: the sink units any of ``sources`` owns (shared
    units included; backbone units and layers without sinks: False)."""
    ids = torch.tensor(sorted({int(s) for s in sources}), dtype=torch.long)
    masks = []
    for layer in model.model.layers:
        mlp: SinkMLP = layer.mlp
        device = mlp.down_proj.weight.device
        mask = torch.zeros(mlp.n_backbone + mlp.n_sinks, dtype=torch.bool, device=device)
        if mlp.has_sinks and ids.numel():
            mask[mlp.n_backbone:] = model.model.gates.membership(mlp, ids.to(device)).any(0)
        masks.append(mask)
    return masks


@torch.no_grad()
def purge_sinks_routed(model: SinkForCausalLM, sources: Iterable[int] | None = None) -> SinkForCausalLM:
    """A copy of the sink model with the forgotten sources (``model.forgotten`` plus
    ``sources``) purged from the weights and the router, routing kept (see the module
    docstring): every unit they own has its ``gate_proj`` / ``up_proj`` rows and biases and
    its ``down_proj`` column set to exactly 0 in every sink layer; their router entries are
    dropped. ``config.forgotten`` keeps listing them; the config's :data:`PURGE_FIELD`
    record lists every source purged so far (purging more sources later adds to it). The
    model itself is not changed.

    UserError (one line): not a sink model, nothing new to purge, unknown ids, an id purged
    before, or a purge that would leave the router without a source.
    """
    _require_sink_model(model)
    new, before = routed_purge_request(model, sources)
    purged_all = sorted(set(before) | set(new))
    out = copy.deepcopy(model)
    masks = owned_unit_masks(out, purged_all)
    for layer, mask in zip(out.model.layers, masks):
        if not bool(mask.any()):
            continue
        mlp = layer.mlp
        for name in ("gate_proj", "up_proj"):
            linear = getattr(mlp, name)
            linear.weight[mask] = 0
            if linear.bias is not None:
                linear.bias[mask] = 0
        mlp.down_proj.weight[:, mask] = 0
    config = out.config
    record = dict(getattr(config, PURGE_FIELD, None) or {})
    router = out.model.router
    router_before = record.get("router_size_before", int(config.router_size))
    if router.fitted:
        router.drop_sources(purged_all)
        config.router_size = int(router.source_ids.numel())
    config.forgotten = sorted(set(config.forgotten) | set(purged_all))
    record.update({
        "purged_sources": purged_all,
        "mode": ROUTED_PURGE_MODE,
        "units_zeroed": [int(mask.sum()) for mask in masks],
        "intermediate_size": int(config.intermediate_size),
        "router_size_before": int(router_before),
        "router_size": int(config.router_size),
    })
    setattr(config, PURGE_FIELD, record)
    out.model.gates.clear()
    return out
