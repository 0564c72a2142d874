"""Sharpness-aware unlearning: SAM on the forget loss of NPO or GradDiff (Fan et al., 2025,
"Towards LLM Unlearning Resilient to Relearning Attacks: A Sharpness-Aware Minimization
Perspective and Beyond", arXiv 2502.05374).

Relearning is a small fine-tuning step from the unlearned weights; if the forget loss is
high only at a sharp point, a small step finds the low-loss region again. SAM minimises
the worst forget loss within radius ``rho``,
``min_theta max_{||e|| <= rho} l_f(theta + e) + lambda * l_r(theta)``, to first order
``e = rho * g / ||g||`` with ``g = grad l_f(theta)``. Each step:

1. ``g`` at the current weights (forget loss only; the local process's batch),
2. move to ``theta + e``, backpropagate the forget loss there,
3. move back to ``theta``, backpropagate the retain term there,

and the Trainer's optimiser steps at ``theta`` with the summed gradient. Both
backward passes go through ``Trainer.training_step`` (accelerate's backward,
gradient accumulation scaling, DDP gradient averaging); the ascent direction in 1 is
each process's own (computed on the unwrapped model, as SAM's m-sharpness does).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from obliviate.errors import UserError
from obliviate.methods.grad_diff import GradDiffTrainer
from obliviate.methods.npo import NPOTrainer
from obliviate.methods.registry import UnlearnResult, UnlearnTask, register
from obliviate.methods.trainer import TrainerMethod, UnlearnConfig, UnlearnTrainer

SAM_BASES = ("npo", "grad_diff")


@dataclass
class SAMConfig(UnlearnConfig):
    base: str = "npo"               # whose forget loss is made sharpness-aware: "npo" or "grad_diff"
    rho: float = 0.01               # radius of the weight perturbation (L2 over all trainable weights)
    beta: float = 0.1               # NPO's beta
    # NPO's tuned settings (docs/sweep.md); GradDiff's are lr 1e-3, 40 steps, retain_weight 3
    lr: float = 1e-3
    max_steps: int = 80
    retain_loss: str = "nll"
    retain_weight: float = 5.0


def validate_sam(config: SAMConfig) -> None:
    if config.base not in SAM_BASES:
        raise UserError(f"sam base must be one of {', '.join(SAM_BASES)}, got {config.base!r}")
    if not config.rho > 0:
        raise UserError(f"rho must be positive, got {config.rho}")
    if config.base == "npo" and not config.beta > 0:
        raise UserError(f"beta must be positive, got {config.beta}")


def sam_perturbation(grads: list[torch.Tensor | None], rho: float, eps: float = 1e-12) -> list[torch.Tensor | None]:
    """``e = rho * g / ||g||``, ``||g||`` the L2 norm over every tensor of ``grads``."""
    present = [g for g in grads if g is not None]
    if not present:
        return list(grads)
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in present]))
    scale = rho / (float(norm) + eps)
    return [None if g is None else g * scale for g in grads]


class SharpnessAwareTrainer(UnlearnTrainer):
    """SAM on the forget term; the base trainer (mixed in after this class) gives ``forget_loss``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.phase = "both"

    def loss_terms(self, model, inputs: dict) -> dict[str, torch.Tensor]:
        if self.phase == "forget":
            logits = self.part_logits(model, inputs, ["forget"])
            forget = self.forget_loss(model, inputs, logits)
            return {"forget": forget, "loss": forget}
        if self.phase == "retain":
            logits = self.part_logits(model, inputs, ["retain"])
            retain = self.retain_loss(model, inputs, logits)
            return {"retain": retain, "loss": self.method_config.retain_weight * retain}
        return super().loss_terms(model, inputs)

    def ascent_direction(self, model, inputs: dict, parameters: list[torch.nn.Parameter]) -> list:
        """``e`` from the forget loss at the current weights, without touching ``.grad``."""
        unwrapped = self.accelerator.unwrap_model(model)
        prepared = self._prepare_inputs(inputs)
        self.phase = "forget"
        with self.compute_loss_context_manager():
            loss = self.loss_terms(unwrapped, prepared)["loss"]
        grads = torch.autograd.grad(loss, parameters, allow_unused=True)
        return sam_perturbation(list(grads), self.method_config.rho)

    def training_step(self, model, inputs, num_items_in_batch=None):
        model.train()
        parameters = [p for p in model.parameters() if p.requires_grad]
        offsets = self.ascent_direction(model, inputs, parameters)
        with torch.no_grad():
            for parameter, offset in zip(parameters, offsets):
                if offset is not None:
                    parameter.add_(offset.to(parameter.dtype))
        try:
            self.phase = "forget"          # gradient of the forget loss at theta + e
            loss = super().training_step(model, inputs, num_items_in_batch)
        finally:
            with torch.no_grad():
                for parameter, offset in zip(parameters, offsets):
                    if offset is not None:
                        parameter.sub_(offset.to(parameter.dtype))
        if self.uses_retain():
            self.phase = "retain"          # plus the retain term's gradient at theta
            loss = loss + super().training_step(model, inputs, num_items_in_batch)
        self.phase = "both"
        return loss


class SAMNPOTrainer(SharpnessAwareTrainer, NPOTrainer):
    pass


class SAMGradDiffTrainer(SharpnessAwareTrainer, GradDiffTrainer):
    pass


TRAINERS = {"npo": SAMNPOTrainer, "grad_diff": SAMGradDiffTrainer}


@register
class SAM(TrainerMethod):
    name = "sam"
    config_class = SAMConfig
    summary = "sharpness-aware (SAM) forget loss of NPO or GradDiff, to resist relearning"
    trainer_class = SAMNPOTrainer

    def needs_reference(self) -> bool:
        return self.config.base == "npo" or super().needs_reference()

    @classmethod
    def check_settings(cls, config) -> None:
        super().check_settings(config)
        validate_sam(config)

    def unlearn(self, model, tokenizer, task: UnlearnTask) -> UnlearnResult:
        self.check_settings(self.config)   # the base must be known before its trainer is picked
        self.trainer_class = TRAINERS[self.config.base]
        result = super().unlearn(model, tokenizer, task)
        result.report = {"base": self.config.base, "rho": self.config.rho}
        return result
