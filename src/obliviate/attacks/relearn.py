"""Relearning attack: fine-tune a copy of the model for k steps on part of the forgotten
facts and measure how much of the held-apart part comes back.

A model that truly lost the forgotten sources behaves like the retain model: learning
some facts of a source teaches it nothing about the source's other facts. A model that
only suppressed them recovers the held-apart facts within a few steps. The curves of
the unlearned, retain and full models are compared through the *relearning gap*.

One Hugging Face ``Trainer`` run of ``max(k)`` steps at a constant learning rate is
graded at every k of the list (a callback), which equals separate runs of k steps.
The attack trains a deep copy: the model it grades is never modified.
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from scipy.integrate import trapezoid
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback

from obliviate.attacks.items import ItemSplit, strip_facts
from obliviate.attacks.measure import MeasureConfig, measure_format, measure_recall, membership_aucs
from obliviate.data.format import PLAIN, QAFormat
from obliviate.errors import UserError
from obliviate.eval.metrics.qa import answer_value
from obliviate.eval.scoring import pad_token_id
from obliviate.methods.data import encode_documents, encode_qa
from obliviate.train.data import CausalCollator

RELEARN_DATA = ("qa", "docs")
GAP_METRICS = ("accuracy", "prob", "value_prob", "value_choice", "truth_score", "rouge")


@dataclass
class RelearnConfig:
    steps: list[int] = field(default_factory=lambda: [0, 1, 2, 5, 10, 20, 50])  # k values graded (0: before)
    lr: float = 3e-4                  # constant learning rate (AdamW); tuned on the micro world
    batch_size: int = 4
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 512
    data: str = "qa"                  # "qa": the relearn half's QA items; "docs": the forget sources'
                                      # documents without the sentences that state a held-apart fact
    reach_fraction: float = 1.0       # "reaches the full model's level": accuracy >= this * full level
    mia: bool = True                  # MIA AUC (held-apart forget vs holdout) at every k
    seed: int = 0


def validate_relearn(config: RelearnConfig) -> list[int]:
    if config.data not in RELEARN_DATA:
        raise UserError(f"relearn data must be one of {', '.join(RELEARN_DATA)}, got {config.data!r}")
    if not config.steps:
        raise UserError("relearn steps list is empty")
    if any(int(k) < 0 for k in config.steps):
        raise UserError(f"relearn steps must be >= 0, got {list(config.steps)}")
    if config.lr <= 0 or config.batch_size < 1:
        raise UserError(f"relearn needs lr > 0 and batch_size >= 1 (got lr={config.lr}, batch_size={config.batch_size})")
    if config.reach_fraction <= 0:
        raise UserError(f"reach_fraction must be positive, got {config.reach_fraction}")
    return sorted({int(k) for k in config.steps})


def relearn_examples(tokenizer, split: ItemSplit, forget_docs: Sequence[dict], config: RelearnConfig,
                     fmt: QAFormat = PLAIN) -> list[dict]:
    """Token ids + labels the attack fine-tunes on (never a held-apart fact), in the QA format ``fmt``."""
    if config.data == "qa":
        examples = encode_qa(tokenizer, split.relearn, max_length=config.max_length, fmt=fmt)
    else:
        held_values: dict[int, list[str]] = {}
        for item in split.held:
            held_values.setdefault(int(item["source_id"]), []).append(answer_value(item))
        sources = {int(item["source_id"]) for item in split.relearn + split.held}
        docs = []
        for doc in forget_docs:
            if int(doc["source_id"]) not in sources:
                continue
            text = strip_facts(doc["text"], held_values.get(int(doc["source_id"]), []))
            if text.strip():
                stripped = {**doc, "text": text}
                if text != doc["text"]:
                    stripped.pop("qa", None)  # its pair states a held-apart fact: train on the stripped text
                docs.append(stripped)
        examples = encode_documents(tokenizer, docs, config.max_length, fmt)
    if not examples:
        raise UserError("the relearning attack has nothing to train on: every forget source has a single "
                        "item (all held apart) or its documents state only held-apart facts")
    return examples


class _GradeAtSteps(TrainerCallback):
    def __init__(self, steps: set[int], grade: Callable[[object, int], None]):
        self.steps = steps
        self.grade = grade

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step in self.steps:
            self.grade(model, state.global_step)


def relearn_curve(model, tokenizer, examples: list[dict], held: Sequence[dict], holdout: Sequence[dict],
                  config: RelearnConfig, measure: MeasureConfig = MeasureConfig()) -> list[dict]:
    """Recall of ``held`` after k = each of ``config.steps`` fine-tuning steps on ``examples``."""
    steps = validate_relearn(config)
    attacked = copy.deepcopy(model)
    for parameter in attacked.parameters():
        parameter.requires_grad_(True)
    points: dict[int, dict] = {}

    def grade(current, k: int) -> None:
        point = {"k": k, **measure_recall(current, tokenizer, held, config=measure).summary()}
        if config.mia:
            point.update(membership_aucs(current, tokenizer, held, holdout, config=measure) or {})
        points[k] = point

    if 0 in steps:
        grade(attacked, 0)
    total = max(steps)
    on_gpu = any(p.is_cuda for p in attacked.parameters())
    if total > 0:
        with tempfile.TemporaryDirectory(prefix="obliviate-relearn-") as scratch:
            args = TrainingArguments(
                output_dir=scratch, max_steps=total, per_device_train_batch_size=config.batch_size,
                learning_rate=config.lr, lr_scheduler_type="constant", warmup_steps=0,
                weight_decay=config.weight_decay, max_grad_norm=config.max_grad_norm,
                seed=config.seed, data_seed=config.seed, save_strategy="no", logging_strategy="no",
                report_to="none", disable_tqdm=True, dataloader_num_workers=0, remove_unused_columns=False,
                use_cpu=not on_gpu, dataloader_pin_memory=on_gpu,
            )
            trainer = Trainer(model=attacked, args=args, train_dataset=examples,
                              data_collator=CausalCollator(pad_token_id(tokenizer)),
                              callbacks=[_GradeAtSteps(set(steps) - {0}, grade)])
            trainer.remove_callback(PrinterCallback)
            trainer.train()
    del attacked
    return [points[k] for k in steps]


def _first_k(curve: Sequence[dict], metric: str, target: float) -> int | None:
    for point in curve:
        if point.get(metric) is not None and point[metric] >= target - 1e-12:
            return int(point["k"])
    return None


def relearning_gap(curves: dict[str, list[dict]], metric: str = "accuracy", reach_fraction: float = 1.0) -> dict:
    """How much faster the unlearned model recovers than the retain model learns.

    ``area``: the area between the unlearned and retain curves of ``metric`` over k,
    divided by the k range (the mean gap; > 0: the unlearned model recovers more).
    ``full_level``: the full model's ``metric`` before the attack; ``first_k``: per model,
    the first graded k at which ``metric`` reaches ``reach_fraction * full_level``.
    """
    result: dict = {"metric": metric, "area": None, "final_gap": None, "full_level": None, "first_k": {}}
    if any(point.get(metric) is None for curve in curves.values() for point in curve):
        return result
    unlearned, retain = curves.get("unlearned"), curves.get("retain")
    if unlearned and retain:
        ks = np.array([p["k"] for p in unlearned], dtype=np.float64)
        gap = np.array([u[metric] - r[metric] for u, r in zip(unlearned, retain)], dtype=np.float64)
        span = ks[-1] - ks[0]
        result["area"] = float(trapezoid(gap, ks) / span) if span > 0 else float(gap[0])
        result["final_gap"] = float(gap[-1])
    full = curves.get("full")
    if full:
        level = float(full[0][metric])
        result["full_level"] = level
        if level > 0:
            result["first_k"] = {role: _first_k(curve, metric, reach_fraction * level) for role, curve in curves.items()}
    return result


def relearning_attack(models: dict, tokenizer, split: ItemSplit, holdout: Sequence[dict], forget_docs: Sequence[dict],
                      config: RelearnConfig = RelearnConfig(), measure: MeasureConfig = MeasureConfig()) -> dict:
    """Run the same attack on every model of ``models`` (``{"unlearned": m, "retain": m, "full": m}``)."""
    validate_relearn(config)
    if not split.held:
        raise UserError("the relearning attack has no held-apart items to grade")
    examples = relearn_examples(tokenizer, split, forget_docs, config, measure_format(tokenizer, measure))
    curves = {role: relearn_curve(model, tokenizer, examples, split.held, holdout, config, measure)
              for role, model in models.items()}
    return {
        "curves": curves,
        "gap": {metric: relearning_gap(curves, metric, config.reach_fraction)
                for metric in GAP_METRICS},
        "n_train_examples": len(examples),
        "n_held": len(split.held),
    }
