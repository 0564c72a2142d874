"""Familiarity over WHP fine-tuning steps (the WHP paper's figure), measured while training.

``FamiliarityProbe`` measures the cheap curve metrics of a model in a few seconds:

* ``familiarity_completion``: the evaluator's completion judge over greedy completions
  of the world's completion prompts;
* ``familiarity_probability``: mean probability mass on the saga-specific continuations
  of the probability prompts (the evaluator's definition);
* ``general_prob``: mean answer probability ``exp(-avg_nll)`` of the general-knowledge QA
  items, a cheap utility proxy (NOT the evaluator's normalised ``general_prob``).

``FamiliarityCurve`` is a ``TrainerCallback`` that probes every ``every`` optimizer steps
and at the last step; pass it to ``obliviate.workflows.unlearn.run_unlearning(...,
callbacks=[curve])`` (or to ``finetune_on_generic_labels``) to record a curve. The time
spent probing is kept apart (``probe_seconds``) so that it can be taken out of a cost.
"""

from __future__ import annotations

import logging
import time

import torch
from transformers import TrainerCallback

from obliviate.data.format import qa_continuation, qa_prompt
from obliviate.eval.generation import GreedyConfig, generate_greedy
from obliviate.eval.metrics.familiarity import FamiliarityJudge, familiarity_score, target_mass, term_continuation
from obliviate.eval.scoring import score_continuations
from obliviate.whp.inference import WHPGenerator
from obliviate.whp.labels import generic_logits

log = logging.getLogger(__name__)

CURVE_KEYS = ("familiarity_completion", "familiarity_probability", "general_prob")


class FamiliarityProbe:
    """Cheap metrics for curve points: familiarity (completion judge, probability mass) and general_prob."""

    def __init__(self, world, tokenizer, max_new_tokens: int = 32):
        self.tokenizer = tokenizer
        self.completion = [p for p in world.prompts if p.get("type") == "completion"]
        self.probability = [p for p in world.prompts if p.get("type") == "probability" and p.get("target_terms")]
        self.judge = FamiliarityJudge.from_world_dir(world.root, world.anchors)
        self.term_pairs = [(p["prompt"], term_continuation(p["prompt"], t)) for p in self.probability
                           for t in p["target_terms"]]
        general = world.qa_for("general") if "general" in world.splits else []
        self.general_pairs = [(qa_prompt(q["question"]), qa_continuation(q["answer"])) for q in general]
        self.max_new_tokens = max_new_tokens

    def _summarise(self, completions, term_nlls, general_nlls) -> dict:
        out: dict = {key: None for key in CURVE_KEYS}
        if self.judge is not None and self.completion:
            grades = [self.judge.grade(p["prompt"], c, p.get("reference", ""))
                      for p, c in zip(self.completion, completions)]
            out["familiarity_completion"] = familiarity_score(grades)
        if self.probability:
            masses, k = [], 0
            for p in self.probability:
                n = len(p["target_terms"])
                masses.append(target_mass(term_nlls[k: k + n]))
                k += n
            out["familiarity_probability"] = sum(masses) / len(masses)
        if general_nlls:
            out["general_prob"] = sum(torch.exp(-torch.tensor(general_nlls)).tolist()) / len(general_nlls)
        return out

    @torch.inference_mode()
    def measure(self, model) -> dict:
        was_training = model.training
        model.eval()
        try:
            completions = generate_greedy(model, self.tokenizer, [p["prompt"] for p in self.completion],
                                          GreedyConfig(max_new_tokens=self.max_new_tokens)) if self.completion else []
            scores = score_continuations(model, self.tokenizer, self.term_pairs + self.general_pairs)
        finally:
            model.train(was_training)
        term_nlls = [s.nll_sum for s in scores[: len(self.term_pairs)]]
        general_nlls = [s.avg_nll for s in scores[len(self.term_pairs):]]
        return self._summarise(completions, term_nlls, general_nlls)

    @torch.inference_mode()
    def measure_inference_variant(self, base, reinforced, alpha: float) -> dict:
        """The same metrics for generation-time WHP (no weights change)."""
        generator = WHPGenerator(base, reinforced, self.tokenizer, alpha)
        completions = generator.generate([p["prompt"] for p in self.completion], self.max_new_tokens) \
            if self.completion else []

        def nll(prompt: str, continuation: str) -> tuple[float, int]:
            context = self.tokenizer(prompt)["input_ids"]
            whole = self.tokenizer(prompt + continuation)["input_ids"]
            ids = torch.tensor([whole], device=next(base.parameters()).device)
            logits = generic_logits(base(ids).logits.float(), reinforced(ids).logits.float(), alpha)[0]
            logprobs = torch.log_softmax(logits, dim=-1)
            targets = whole[len(context):]
            total = -sum(logprobs[len(context) - 1 + i, t].item() for i, t in enumerate(targets))
            return total, max(1, len(targets))

        term_nlls = [nll(p, c)[0] for p, c in self.term_pairs]
        general = [nll(p, c) for p, c in self.general_pairs]
        return self._summarise(completions, term_nlls, [total / n for total, n in general])


class FamiliarityCurve(TrainerCallback):
    """Probe the model being trained every ``every`` steps and at the last step.

    ``points`` starts with whatever the caller already knows (e.g. ``{"step": 0, ...}`` of
    the starting model); when it is empty, the starting model is probed at step 0.
    """

    def __init__(self, probe: FamiliarityProbe, every: int = 10, points: list[dict] | None = None):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.probe = probe
        self.every = every
        self.points: list[dict] = points if points is not None else []
        self.probe_seconds = 0.0

    def _record(self, step: int, model) -> None:
        started = time.perf_counter()
        self.points.append({"step": step, **self.probe.measure(model)})
        elapsed = time.perf_counter() - started
        self.probe_seconds += elapsed
        log.info("  step %d: %s (%.1fs)", step, self.points[-1], elapsed)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if not self.points and model is not None:
            self._record(0, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is not None and (state.global_step % self.every == 0 or state.global_step == state.max_steps):
            self._record(state.global_step, model)
