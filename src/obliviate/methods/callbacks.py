"""Trainer callbacks for unlearning runs: a progress bar, a truth-ratio stopping rule, and
evaluations every N steps that keep the best weights."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable, Sequence

import torch
from transformers import TrainerCallback

from obliviate.data.format import PLAIN, QAFormat
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
        # per-term losses only (the Trainer's closing "train_loss" summary and evaluations'
        # "eval_mia_loss" are not ones)
        shown = {key.removesuffix("_loss"): f"{value:.3g}" for key, value in logs.items()
                 if key.endswith("_loss") and not key.startswith(("train", "eval_"))
                 and isinstance(value, (int, float))}
        if "forget_truth_ratio" in logs:
            shown["forget_tr"] = f"{logs['forget_truth_ratio']:.3f}"
        if shown:
            self.bar.set_postfix(shown, refresh=False)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def forget_truth_ratio(model, tokenizer, items: Sequence[dict], batch_size: int = 32, fmt: QAFormat = PLAIN) -> float:
    """The evaluator's forget truth ratio (``mean(min(TR, 1/TR))``) of ``items``, from the
    scoring engine and ``obliviate.eval.metrics.truth_ratio``, in the model's QA format."""
    pairs, para_index, pert_index = [], [], []
    for item in items:
        prompt = fmt.prompt(item["question"])
        para_index.append(len(pairs))
        pairs.append((prompt, fmt.continuation(item["paraphrased_answer"])))
        pert_index.append(list(range(len(pairs), len(pairs) + len(item["perturbed_answers"]))))
        pairs.extend((prompt, fmt.continuation(answer)) for answer in item["perturbed_answers"])
    scores = score_continuations(model, tokenizer, pairs, ScoringConfig(batch_size=batch_size,
                                                                        add_special_tokens=fmt.add_special_tokens))
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


def score_in_eval_mode(model, score: Callable):
    """``score(model)`` with dropout off, the model's training mode restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        return score(model)
    finally:
        model.train(was_training)


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
        value = _mean_across_processes(score_in_eval_mode(model, self.score), args.device)
        self.history.append((state.global_step, value))
        state.log_history.append({"forget_truth_ratio": value, "step": state.global_step})
        if value >= self.target:
            control.should_training_stop = True


class EvaluateEvery(TrainerCallback):
    """Ask the trainer for an evaluation every ``every`` optimizer steps and at the last step
    (``UnlearnTrainer.evaluate`` runs it and reports it to the tracker); write each one as a
    line of ``log_file``; with ``best_by``, keep a copy of the trainable weights of the
    evaluation with the best value (``mode`` min or max) and put them back when training
    ends, so the model handed back is the best one rather than the last.

    Only trainable parameters are copied (frozen ones, e.g. outside a LoRA adapter or RMU's
    layers, never change), on the CPU. An evaluation whose ``best_by`` value is missing
    (None, NaN) is never chosen; with none chosen the last weights stay. Every process
    evaluates its own replica and decides alike (DDP); sharded models (FSDP, ZeRO-3) are
    not supported by the weight copy.
    """

    def __init__(self, every: int, log_file: Path | None = None, best_by: str | None = None, mode: str = "max"):
        self.every = max(1, every)
        self.log_file = None if log_file is None else Path(log_file)
        self.best_by = best_by
        self.mode = mode
        self.evaluations: list[dict] = []
        self.best: dict | None = None    # {"step", "value"} of the kept weights
        self._weights: dict[str, torch.Tensor] | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        if self.log_file is not None and state.is_world_process_zero:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self.log_file.write_text("", encoding="utf-8")

    def on_step_end(self, args, state, control, **kwargs):
        # the last step too (also an early stop a callback before this one asked for): the
        # last weights are always a candidate
        if (state.global_step % self.every == 0 or state.global_step >= state.max_steps
                or control.should_training_stop):
            control.should_evaluate = True

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best["value"] if self.mode == "max" else value < self.best["value"]

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        summary = {key.removeprefix("eval_"): value for key, value in (metrics or {}).items()
                   if key.startswith("eval_")}
        record = {"step": state.global_step, **summary}
        self.evaluations.append(record)
        if self.log_file is not None and state.is_world_process_zero:
            with self.log_file.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        if self.best_by is None or model is None:
            return
        value = summary.get(self.best_by)
        if isinstance(value, (int, float)) and math.isfinite(value) and self._better(float(value)):
            self.best = {"step": state.global_step, "value": float(value)}
            self._weights = {name: p.detach().to("cpu", copy=True)
                             for name, p in model.named_parameters() if p.requires_grad}

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if self._weights is None or model is None:
            return
        if self.best["step"] != state.global_step:
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if name in self._weights:
                        p.copy_(self._weights[name].to(p.device))
        self._weights = None

    def selection(self, last_step: int) -> dict | None:
        """Which weights were kept, for the output's metadata; None without ``best_by``."""
        if self.best_by is None:
            return None
        return {"kept": "best" if self.best is not None else "last", "best_by": self.best_by, "mode": self.mode,
                "step": self.best["step"] if self.best is not None else last_step,
                "value": None if self.best is None else self.best["value"],
                "last_step": last_step, "evaluations": len(self.evaluations)}
