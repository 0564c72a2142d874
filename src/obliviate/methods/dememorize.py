"""RL dememorization (Kassem et al.) as a registered method: ``--method dememorize``.

The forget documents are cut into (prefix, suffix) token windows; TRL's GRPO (or RLOO)
samples continuations of each prefix and rewards minus their similarity to the true
suffix, with a KL penalty to the starting model (``obliviate.dememorize.train``).
Settings (``--set``): the fields of :class:`DememorizeConfig` (prefix_tokens,
suffix_tokens, skip_short, similarity, algorithm, beta, learning_rate, max_steps, ...).
"""

from __future__ import annotations

from obliviate.dememorize.data import split_documents
from obliviate.dememorize.train import DememorizeConfig, dememorize
from obliviate.methods.registry import UnlearningMethod, UnlearnResult, UnlearnTask, register


@register
class Dememorize(UnlearningMethod):
    name = "dememorize"
    config_class = DememorizeConfig
    summary = "RL dememorization: GRPO/RLOO on forget prefixes, reward = -similarity to the true suffix, KL to the start"

    def unlearn(self, model, tokenizer, task: UnlearnTask) -> UnlearnResult:
        config = self.config.validate()
        pieces = split_documents(tokenizer, task.forget_docs, config.prefix_tokens, config.suffix_tokens,
                                 skip_short=config.skip_short)
        model = dememorize(model, tokenizer, pieces, config, reference_path=task.reference_path)
        return UnlearnResult(model, steps=config.max_steps)
