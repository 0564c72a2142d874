"""Trainer callbacks for unlearning runs: a progress bar and a truth-ratio stopping rule."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from transformers import TrainerCallback

from obliviate.data.format import qa_continuation, qa_prompt
from obliviate.eval.metrics.truth_ratio import forget_truth_ratio as summarise
from obliviate.eval.metrics.truth_ratio import truth_ratio
from obliviate.eval.scoring import ScoringConfig, score_continuations


class UnlearnProgress(TrainerCallback):
    """One tqdm bar on the main process, showing the latest forget and retain losses."""

    def __init__(self, description: str = "unlearning"):
        self.description = description
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.max_steps, desc=self.description, dynamic_ncols=True)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is None or not logs:
            return
        # per-term losses only (the Trainer's closing "train_loss" summary is not one)
        shown = {key.removesuffix("_loss"): f"{value:.3g}" for key, value in logs.items()
                 if key.endswith("_loss") and not key.startswith("train") and isinstance(value, (int, float))}
        if "forget_truth_ratio" in logs:
            shown["forget_tr"] = f"{logs['forget_truth_ratio']:.3f}"
        if shown:
            self.bar.set_postfix(shown, refresh=False)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def forget_truth_ratio(model, tokenizer, items: Sequence[dict], batch_size: int = 32) -> float:
    """The evaluator's forget truth ratio (``mean(min(TR, 1/TR))``) of ``items``, from the
    scoring engine and ``obliviate.eval.metrics.truth_ratio``."""
    pairs, para_index, pert_index = [], [], []
    for item in items:
        prompt = qa_prompt(item["question"])
        para_index.append(len(pairs))
        pairs.append((prompt, qa_continuation(item["paraphrased_answer"])))
        pert_index.append(list(range(len(pairs), len(pairs) + len(item["perturbed_answers"]))))
        pairs.extend((prompt, qa_continuation(answer)) for answer in item["perturbed_answers"])
    scores = score_continuations(model, tokenizer, pairs, ScoringConfig(batch_size=batch_size))
    ratios = truth_ratio([scores[i].avg_nll for i in para_index],
                         [[scores[i].avg_nll for i in row] for row in pert_index])
    return summarise(ratios)


def _mean_across_processes(value: float, device) -> float:
    """Every process must take the same stopping decision, or the next collective hangs."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        tensor = torch.tensor([value], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(tensor)
        return float(tensor.item() / torch.distributed.get_world_size())
    return value


class TruthRatioStop(TrainerCallback):
    """Every ``every`` steps score the forget items; stop once the forget truth ratio
    (``mean(min(TR, 1/TR))``, higher = closer to not knowing) reaches ``target``.

    All processes score (FSDP/ZeRO-3 need every rank in the forward pass) and share the
    mean, so they stop at the same step.
    """

    def __init__(self, score: Callable[[object], float], target: float, every: int):
        self.score = score
        self.target = target
        self.every = max(1, every)
        self.history: list[tuple[int, float]] = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every != 0 or model is None:
            return
        was_training = model.training
        model.eval()
        try:
            value = self.score(model)
        finally:
            model.train(was_training)
        value = _mean_across_processes(value, args.device)
        self.history.append((state.global_step, value))
        state.log_history.append({"forget_truth_ratio": value, "step": state.global_step})
        if value >= self.target:
            control.should_training_stop = True
