"""Gradient difference: ``-NLL(f) + a * NLL(r)``, or ``a * KL(ref || model)`` on r."""

from __future__ import annotations

from dataclasses import dataclass

from obliviate.methods.registry import register
from obliviate.methods.trainer import TrainerMethod, UnlearnConfig, UnlearnTrainer
from obliviate.train.losses import nll_loss


@dataclass
class GradDiffConfig(UnlearnConfig):
    # chosen by bench/sweep_methods.py on the tiny world (docs/sweep.md)
    lr: float = 1e-3
    max_steps: int = 40
    retain_loss: str = "nll"    # "kl" keeps the retain predictions of the starting model instead
    retain_weight: float = 3.0


class GradDiffTrainer(UnlearnTrainer):
    def forget_loss(self, model, inputs, logits):
        return -nll_loss(logits["forget"], inputs["forget"]["labels"])


@register
class GradDiff(TrainerMethod):
    name = "grad_diff"
    config_class = GradDiffConfig
    summary = "gradient ascent on forget + descent (NLL or KL to reference) on retain"
    trainer_class = GradDiffTrainer
