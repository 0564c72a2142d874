"""SimNPO (Fan et al., 2024): NPO without a reference, length-normalised.

``-(2/b) * mean(logsigmoid(-b * logp(f)/|f| - gamma))`` plus the retain term.
"""

from __future__ import annotations

from dataclasses import dataclass

from obliviate.methods.registry import register
from obliviate.methods.trainer import TrainerMethod, UnlearnConfig, UnlearnTrainer
from obliviate.train.losses import sequence_logprobs, simnpo_loss


@dataclass
class SimNPOConfig(UnlearnConfig):
    # chosen by bench/sweep_methods.py on the tiny world (docs/sweep.md)
    lr: float = 1e-3
    max_steps: int = 80
    beta: float = 2.5
    gamma: float = 0.0
    retain_loss: str = "nll"
    retain_weight: float = 1.0


class SimNPOTrainer(UnlearnTrainer):
    def forget_loss(self, model, inputs, logits):
        logp, lengths = sequence_logprobs(logits["forget"], inputs["forget"]["labels"])
        return simnpo_loss(logp, lengths, self.method_config.beta, self.method_config.gamma)


@register
class SimNPO(TrainerMethod):
    name = "simnpo"
    config_class = SimNPOConfig
    summary = "reference-free, length-normalised NPO, plus a retain term"
    trainer_class = SimNPOTrainer
