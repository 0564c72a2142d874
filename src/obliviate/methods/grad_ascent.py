"""Gradient ascent: maximise the NLL of the forget answers, ``loss = -NLL(f)``."""

from __future__ import annotations

from dataclasses import dataclass

from obliviate.methods.registry import register
from obliviate.methods.trainer import TrainerMethod, UnlearnConfig, UnlearnTrainer
from obliviate.train.losses import nll_loss


@dataclass
class GradAscentConfig(UnlearnConfig):
    # micro (forget/retain unique accuracy from 1.00/0.97): 3e-4 x 20 -> 0.00/0.06 (collapse),
    # 3e-4 x 10 -> 0.50/0.93, 2e-4 x 20 -> 0.10/0.75; plain ascent has no brake, so step gently
    lr: float = 2e-4
    max_steps: int = 20
    retain_loss: str = "none"   # plain gradient ascent has no retain term


class GradAscentTrainer(UnlearnTrainer):
    def forget_loss(self, model, inputs, logits):
        return -nll_loss(logits["forget"], inputs["forget"]["labels"])


@register
class GradAscent(TrainerMethod):
    name = "grad_ascent"
    config_class = GradAscentConfig
    summary = "gradient ascent on the forget answers (-NLL)"
    trainer_class = GradAscentTrainer
