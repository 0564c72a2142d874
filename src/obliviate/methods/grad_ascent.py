"""Gradient ascent: maximise the NLL of the forget answers, ``loss = -NLL(f)``."""

from __future__ import annotations

from dataclasses import dataclass

from obliviate.methods.losses import nll_loss
from obliviate.methods.registry import register
from obliviate.methods.trainer import TrainerMethod, UnlearnConfig, UnlearnTrainer


@dataclass
class GradAscentConfig(UnlearnConfig):
    # 1e-4 left micro's forget accuracy at 0.8 (from 0.9); 3e-4 is the measured step
    lr: float = 3e-4
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
