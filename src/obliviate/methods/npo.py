"""Negative Preference Optimization (Zhang et al., 2024).

``-(2/b) * mean(logsigmoid(-b * (logp(f) - logp_ref(f))))`` on summed sequence
log-probs of the forget answers, plus the retain term (NLL by default).
"""

from __future__ import annotations

from dataclasses import dataclass

from obliviate.methods.registry import register
from obliviate.methods.trainer import TrainerMethod, UnlearnConfig, UnlearnTrainer
from obliviate.train.losses import npo_loss, sequence_logprobs


@dataclass
class NPOConfig(UnlearnConfig):
    # chosen by bench/sweep_methods.py on the tiny world (docs/sweep.md)
    lr: float = 1e-3
    max_steps: int = 80
    beta: float = 0.1
    retain_loss: str = "nll"
    retain_weight: float = 5.0


class NPOTrainer(UnlearnTrainer):
    def forget_loss(self, model, inputs, logits):
        labels = inputs["forget"]["labels"]
        logp, _ = sequence_logprobs(logits["forget"], labels)
        ref_logits = self.part_logits(model, inputs, ["forget"], reference=True)["forget"]
        ref_logp, _ = sequence_logprobs(ref_logits, labels)
        return npo_loss(logp, ref_logp, self.method_config.beta)


@register
class NPO(TrainerMethod):
    name = "npo"
    config_class = NPOConfig
    summary = "negative preference optimization against a frozen reference, plus a retain term"
    trainer_class = NPOTrainer

    def needs_reference(self) -> bool:
        return True
