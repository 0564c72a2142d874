"""RMU, Representation Misdirection for Unlearning (Li et al., 2024, WMDP).

On forget data the hidden states output by decoder layer ``l`` are steered toward
``c * u`` (``u`` a fixed random unit vector drawn from ``seed``); on retain data they
are kept equal to the frozen reference's (MSE). Only parameters whose name matches
``param_regex`` train (default: the MLPs of layers l-2..l).

The decoder layers are found generically: ``layers_path`` if given (e.g.
``transformer.h``), else ``model.get_decoder().layers``, else the longest
``nn.ModuleList`` holding ``config.num_hidden_layers`` modules; the MLP is the layer's
``mlp`` child (or ``feed_forward``, ``ffn``...; none: the whole layer trains).
"""

from __future__ import annotations

import inspect
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import torch

from obliviate.errors import UserError
from obliviate.methods.registry import UnlearnTask, register
from obliviate.methods.trainer import TrainerMethod, UnlearnConfig, UnlearnTrainer
from obliviate.train.losses import IGNORE_INDEX, masked_mse


@dataclass
class RMUConfig(UnlearnConfig):
    # chosen by bench/sweep_methods.py on the tiny world (docs/sweep.md)
    lr: float = 3e-3
    max_steps: int = 80
    layer: int | None = None            # steered decoder layer; None: (num_layers - 1) // 2
    layers_path: str | None = None      # dotted path of the decoder layer list; None: discovered
    param_regex: str | None = None      # trainable parameters (re.search on names); None: MLPs of layers l-2..l
    steering_coeff: float | None = None  # c; None: steering_scale * mean hidden-state norm on forget data
    steering_scale: float = 4.0
    retain_loss: str = "mse"            # "mse" (hidden states equal to the reference's) or "none"
    retain_weight: float = 100.0        # alpha


def _unwrap_peft(model):
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def find_decoder_layers(model, layers_path: str | None = None) -> tuple[str, torch.nn.ModuleList]:
    """The decoder's list of layers and its qualified name inside ``model`` (PEFT-wrapped or not)."""
    base = _unwrap_peft(model)
    layers = None
    if layers_path:
        try:
            layers = base.get_submodule(layers_path)
        except AttributeError:
            raise UserError(f"layers_path {layers_path!r} names no module of {type(base).__name__}") from None
        if not isinstance(layers, torch.nn.ModuleList):
            raise UserError(f"layers_path {layers_path!r} is a {type(layers).__name__}, not a list of layers")
    if layers is None and callable(getattr(base, "get_decoder", None)):
        candidate = getattr(base.get_decoder(), "layers", None)
        if isinstance(candidate, torch.nn.ModuleList):
            layers = candidate
    if layers is None:
        expected = getattr(getattr(base, "config", None), "num_hidden_layers", None)
        lists = [m for _, m in base.named_modules() if isinstance(m, torch.nn.ModuleList) and len(m) > 0]
        matching = [m for m in lists if expected is None or len(m) == expected]
        if matching:
            layers = max(matching, key=len)
    if layers is None:
        raise UserError(f"cannot find the decoder layers of {type(base).__name__}; set layers_path (e.g. model.layers)")
    name = next(n for n, m in model.named_modules() if m is layers)
    return name, layers


# names architectures give a decoder layer's feed-forward block (Llama/GPT-2/NeoX/Qwen2/Mistral: mlp)
MLP_NAMES = ("mlp", "feed_forward", "ffn", "block_sparse_moe")


def mlp_name(layer_module: torch.nn.Module) -> str | None:
    """The child of a decoder layer that holds its MLP, or None (e.g. OPT's fc1/fc2 sit in the layer)."""
    children = {name for name, _ in layer_module.named_children()}
    return next((name for name in MLP_NAMES if name in children), None)


def default_param_regex(layers_name: str, layer: int, lora: bool = False, mlp: str | None = "mlp") -> str:
    """MLPs (child ``mlp``) of layers l-2..l; with LoRA or without an MLP child, every weight
    (adapter weight) in those layers."""
    indices = "|".join(str(i) for i in range(max(0, layer - 2), layer + 1))
    inner = "" if lora or mlp is None else rf"{re.escape(mlp)}\."
    return rf"^{re.escape(layers_name)}\.({indices})\." + inner


def control_vector(hidden_size: int, seed: int) -> torch.Tensor:
    """A fixed random unit vector (uniform entries, then normalised, as in WMDP)."""
    generator = torch.Generator().manual_seed(seed)
    vector = torch.rand(hidden_size, generator=generator)
    return vector / vector.norm()


@contextmanager
def capture_output(module: torch.nn.Module, store: list):
    """Append ``module``'s output hidden states to ``store`` while the block runs."""

    def hook(_module, _inputs, output):
        store.append(output[0] if isinstance(output, tuple) else output)

    handle = module.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def answer_positions(labels: torch.Tensor) -> torch.Tensor:
    """Positions whose hidden state predicts a labelled token (the answer, for QA data)."""
    mask = torch.zeros_like(labels, dtype=torch.bool)
    mask[:, :-1] = labels[:, 1:].ne(IGNORE_INDEX)
    return mask


class RMUTrainer(UnlearnTrainer):
    def __init__(self, *args, layer: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.layer = layer
        self.steering_coeff: float | None = None     # c, fixed at the first step
        self.steering_target: torch.Tensor | None = None
        self._coeff_logged = False
        self._layers: dict[int, torch.nn.Module] = {}

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.steering_coeff is not None and not self._coeff_logged:
            logs["steering_coeff"] = self.steering_coeff   # the auto-scaled c lands in the run's history
            self._coeff_logged = True
        super().log(logs, start_time)

    def _layer_of(self, owner) -> torch.nn.Module:
        if id(owner) not in self._layers:
            _, layers = find_decoder_layers(owner, self.method_config.layers_path)
            self._layers[id(owner)] = layers[self.layer]
        return self._layers[id(owner)]

    def hidden(self, model, inputs: dict, names: list[str], reference: bool = False) -> dict[str, torch.Tensor]:
        """Output of the steered layer for each part, one forward pass."""
        owner = self.reference.module(self, model) if reference else self.accelerator.unwrap_model(model)
        # only the hidden states matter: skip most of the LM head where the model allows it
        extra = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(owner.forward).parameters else {}
        with capture_output(self._layer_of(owner), []) as store:
            _, rows = self.forward_parts(model, inputs, names, reference=reference, **extra)
        return {name: store[-1][rows[name]] for name in names}

    def _target(self, forget_hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.steering_target is None:
            config = self.method_config
            coeff = config.steering_coeff
            if coeff is None:
                # scale-free default: a multiple of the typical hidden-state norm at this layer
                norms = forget_hidden.detach().float().norm(dim=-1)[mask]
                stats = torch.stack([norms.sum(), torch.tensor(float(norms.numel()), device=norms.device)])
                if torch.distributed.is_available() and torch.distributed.is_initialized():
                    torch.distributed.all_reduce(stats)
                coeff = config.steering_scale * float(stats[0] / stats[1].clamp(min=1))
            self.steering_coeff = coeff
            vector = control_vector(forget_hidden.shape[-1], config.seed)
            self.steering_target = (coeff * vector).to(forget_hidden.device)
        return self.steering_target.to(forget_hidden.dtype)

    def loss_terms(self, model, inputs: dict) -> dict[str, torch.Tensor]:
        names = ["forget", "retain"] if self.uses_retain() else ["forget"]
        hidden = self.hidden(model, inputs, names)
        forget_mask = answer_positions(inputs["forget"]["labels"]) & inputs["forget"]["attention_mask"].bool()
        if self.steering_target is None:
            with torch.no_grad():
                start = self.hidden(model, inputs, ["forget"], reference=True)["forget"]
            self._target(start, forget_mask)
        target = self._target(hidden["forget"], forget_mask).expand_as(hidden["forget"])
        terms = {"forget": masked_mse(hidden["forget"], target, forget_mask)}
        loss = terms["forget"]
        if self.uses_retain():
            reference = self.hidden(model, inputs, ["retain"], reference=True)["retain"]
            terms["retain"] = masked_mse(hidden["retain"], reference, inputs["retain"]["attention_mask"])
            loss = loss + self.method_config.retain_weight * terms["retain"]
        terms["loss"] = loss
        return terms


@register
class RMU(TrainerMethod):
    name = "rmu"
    config_class = RMUConfig
    summary = "steer a layer's hidden states on forget data to a random direction, keep them on retain data"
    trainer_class = RMUTrainer
    retain_losses: ClassVar[tuple[str, ...]] = ("mse", "none")

    def needs_reference(self) -> bool:
        return True   # the steering scale and the retain term read the starting model

    def resolve_layer(self, model) -> tuple[str, int]:
        name, layers = find_decoder_layers(model, self.config.layers_path)
        layer = (len(layers) - 1) // 2 if self.config.layer is None else self.config.layer
        if not -len(layers) <= layer < len(layers):
            raise UserError(f"layer {layer} out of range: the model has {len(layers)} decoder layers")
        return name, layer % len(layers)

    def prepare_model(self, model, task: UnlearnTask):
        name, layer = self.resolve_layer(model)
        mlp = mlp_name(find_decoder_layers(model, self.config.layers_path)[1][layer])
        pattern_text = self.config.param_regex or default_param_regex(name, layer, lora=self.config.lora, mlp=mlp)
        try:
            pattern = re.compile(pattern_text)
        except re.error as exc:
            raise UserError(f"param_regex {pattern_text!r} is not a valid regular expression: {exc}") from None
        candidates = [n for n, p in model.named_parameters() if p.requires_grad]
        chosen = {n for n in candidates if pattern.search(n)}
        if not chosen:
            shown = ", ".join(candidates[:6]) + (", ..." if len(candidates) > 6 else "")
            raise UserError(f"param_regex {pattern_text!r} matches no trainable parameter (names look like: {shown})")
        for parameter_name, parameter in model.named_parameters():
            parameter.requires_grad_(parameter_name in chosen)
        return model

    def trainer_kwargs(self, model, tokenizer, task: UnlearnTask, reference) -> dict:
        _, layer = self.resolve_layer(model)
        return {"layer": layer}

    def training_overrides(self) -> dict:
        # a custom param_regex may pick parameters the steered layer's output does not reach
        return {"ddp_find_unused_parameters": True}
