"""UNDO, Unlearn-Noise-Distill-on-Outputs (Lee et al., 2025, arXiv 2506.06278).

Output-level unlearning only suppresses knowledge: a few fine-tuning steps bring it back.
UNDO (1) unlearns with a base method (the teacher), (2) damages a copy of the teacher's
weights, ``theta' = (1 - alpha) * theta + alpha * beta * N`` (shrink and perturb; ``N`` a
fresh Xavier-uniform draw for matrices, standard normal for vectors, as in the paper's
``do_corruption``), and (3) distills the teacher's next-token distributions into the
damaged copy, ``KL(teacher || student)`` on retain data (and the world's general
documents), so the student relearns the kept behaviour but not the latent forget traces.
``alpha`` trades compute for robustness: 0 is the plain base method, 1 a distillation
into a (scaled) fresh initialisation.

The report holds the cost next to the retrained model's (the retain model of the run,
its ``obliviate_config.json``): distillation tokens vs the retrain's tokens, and the
measured seconds vs its training seconds.
"""

from __future__ import annotations

import copy
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import PrinterCallback, set_seed

from obliviate.config import apply_overrides, parse_assignments
from obliviate.errors import UserError
from obliviate.methods.callbacks import UnlearnProgress
from obliviate.methods.data import PairedDataset, PartsCollator, encode_documents, encode_qa
from obliviate.methods.registry import UnlearningMethod, UnlearnResult, UnlearnTask, get_method, register
from obliviate.methods.trainer import FrozenReference, TrainerMethod, UnlearnConfig, UnlearnTrainer, \
    training_arguments, validate_config
from obliviate.models.loading import read_run_config
from obliviate.train.losses import kl_to_reference

DISTILL_DATA = ("qa", "docs", "both")
UNDO_NAME = "undo"


@dataclass
class UNDOConfig:
    # defaults measured on the micro world (tests/test_methods_robust.py): NPO keeps retain
    # facts there (GradDiff's teacher keeps ~0.6 of them, and the student can only copy it)
    base: str = "npo"                    # the unlearning method whose model is the teacher
    base_set: list[str] = field(default_factory=list)   # its settings, "key=value" (like --set)
    # share of noise mixed into the weights, in [0, 1]. Tiny sweep (docs/sweep-new-methods.md):
    # 0.1 keeps retain 0.93 (0.3: 0.89, 0.5: 0.41); micro (world v2): 0.1 -> forget 0.06, retain 0.88
    alpha: float = 0.1
    beta: float = 0.1                    # scale of the noise (the paper's default)
    distill_data: str = "both"           # "qa": retain QA items; "docs": retain (+ general) documents; "both"
    distill_general: bool = True         # add the world's trained general-knowledge documents
    distill_steps: int = 300
    distill_lr: float = 1e-3
    distill_batch_size: int = 8
    distill_warmup_steps: int = 0
    temperature: float = 1.0             # softmax temperature of the distillation (KL scaled by T^2)
    max_length: int = 512
    max_grad_norm: float = 1.0
    bf16: bool = False
    seed: int = 0
    progress: bool = True
    retrain_model: str | None = None     # retain model to compare the cost to; None: the run's sibling


def validate_undo(config: UNDOConfig) -> None:
    checks = [
        (0.0 <= config.alpha <= 1.0, f"alpha must be in [0, 1], got {config.alpha}"),
        (config.beta >= 0, f"beta must be >= 0, got {config.beta}"),
        (config.distill_data in DISTILL_DATA,
         f"distill_data must be one of {', '.join(DISTILL_DATA)}, got {config.distill_data!r}"),
        (config.distill_steps >= 1, f"distill_steps must be at least 1, got {config.distill_steps}"),
        (config.distill_lr > 0, f"distill_lr must be positive, got {config.distill_lr}"),
        (config.distill_batch_size >= 1, f"distill_batch_size must be at least 1, got {config.distill_batch_size}"),
        (config.distill_warmup_steps >= 0, f"distill_warmup_steps must be >= 0, got {config.distill_warmup_steps}"),
        (config.temperature > 0, f"temperature must be positive, got {config.temperature}"),
        (config.max_length >= 2, f"max_length must be at least 2, got {config.max_length}"),
        (config.base != UNDO_NAME, "base cannot be undo itself"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)


def base_method(config: UNDOConfig) -> UnlearningMethod:
    """The configured base method (unknown names and bad ``base_set`` values are UserErrors)."""
    method_class = get_method(config.base)
    fields = getattr(method_class.config_class, "__dataclass_fields__", {})
    # the base inherits UNDO's seed and progress setting unless base_set names them
    overrides: dict = {key: str(value) for key, value in (("seed", config.seed), ("progress", config.progress))
                       if key in fields}
    overrides.update(parse_assignments(config.base_set))
    try:
        base_config = apply_overrides(method_class.config_class(), overrides)
    except UserError as exc:
        raise UserError(f"base_set for {config.base}: {exc}") from None
    method = method_class(base_config)
    if isinstance(method, TrainerMethod):
        validate_config(base_config, method.retain_losses)   # fail now, not after the base has run
    return method


# -- noise -------------------------------------------------------------------------------


def shrink_perturb(weights: torch.Tensor, noise: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """``(1 - alpha) * weights + alpha * beta * noise``."""
    return (1.0 - alpha) * weights + (alpha * beta) * noise


def fresh_noise(parameter: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Xavier-uniform noise for a matrix (or larger), standard normal for a vector."""
    if parameter.dim() >= 2:
        fan_out, fan_in = parameter.shape[0], parameter[0].numel()
        bound = (6.0 / (fan_in + fan_out)) ** 0.5
        noise = torch.rand(parameter.shape, generator=generator, dtype=torch.float32) * (2 * bound) - bound
    else:
        noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float32)
    return noise.to(device=parameter.device, dtype=parameter.dtype)


@torch.no_grad()
def perturb_model(model, alpha: float, beta: float, seed: int) -> None:
    """Shrink and perturb every trainable parameter of ``model`` in place (tied weights once)."""
    generator = torch.Generator().manual_seed(seed)
    for parameter in model.parameters():   # parameters() yields a tied tensor once
        parameter.copy_(shrink_perturb(parameter, fresh_noise(parameter, generator), alpha, beta))


# -- distillation ------------------------------------------------------------------------


def distill_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor,
                 temperature: float = 1.0) -> torch.Tensor:
    """Token-level ``T^2 * KL(softmax(teacher/T) || softmax(student/T))`` averaged over ``mask``."""
    return kl_to_reference(student_logits / temperature, teacher_logits / temperature, mask) * temperature ** 2


class DistillTrainer(UnlearnTrainer):
    """Batches hold one part, ``retain``; the frozen reference is the teacher."""

    def __init__(self, *args, temperature: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.temperature = temperature
        self.tokens_seen = 0

    def loss_terms(self, model, inputs: dict) -> dict[str, torch.Tensor]:
        student = self.part_logits(model, inputs, ["retain"])["retain"]
        teacher = self.part_logits(model, inputs, ["retain"], reference=True)["retain"]
        mask = inputs["retain"]["attention_mask"]
        self.tokens_seen += int(mask.sum()) * self.accelerator.num_processes
        loss = distill_loss(student, teacher, mask, self.temperature)
        return {"distill": loss, "loss": loss}


def general_docs(task: UnlearnTask) -> list[dict]:
    """Documents of the world's trained general-knowledge sources (none of the forget sources)."""
    world = task.world
    if "general" not in getattr(world, "splits", {}):
        return []
    sources = (world.split_sources("general") & world.trained_sources()) - task.forget_sources - task.retain_sources
    return world.docs_for(sources)


def distill_examples(tokenizer, task: UnlearnTask, config: UNDOConfig) -> list[dict]:
    examples: list[dict] = []
    if config.distill_data in ("qa", "both"):
        examples += encode_qa(tokenizer, task.retain_items, max_length=config.max_length, fmt=task.qa_format)
    if config.distill_data in ("docs", "both"):
        docs = list(task.retain_docs) + (general_docs(task) if config.distill_general else [])
        examples += encode_documents(tokenizer, docs, config.max_length, task.qa_format)
    return examples


def distill(student, teacher, tokenizer, examples: list[dict], config: UNDOConfig, callbacks: list):
    """Train ``student`` to match ``teacher`` on ``examples``; returns (model, steps, history, tokens)."""
    settings = UnlearnConfig(lr=config.distill_lr, max_steps=config.distill_steps, batch_size=config.distill_batch_size,
                             warmup_steps=config.distill_warmup_steps, max_grad_norm=config.max_grad_norm,
                             max_length=config.max_length, seed=config.seed, bf16=config.bf16,
                             progress=config.progress, retain_loss="kl")
    for parameter in student.parameters():
        parameter.requires_grad_(True)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    progress = [UnlearnProgress("undo distill")] if config.progress else []
    with tempfile.TemporaryDirectory(prefix="obliviate-undo-") as scratch:
        trainer = DistillTrainer(
            model=student,
            args=training_arguments(settings, scratch),
            train_dataset=PairedDataset({"retain": examples}),
            data_collator=PartsCollator(pad_token_id=int(pad_id if pad_id is not None else 0)),
            processing_class=tokenizer,
            callbacks=progress + list(callbacks),
            method_config=settings,
            reference=FrozenReference(teacher),
            temperature=config.temperature,
        )
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    model = trainer.accelerator.unwrap_model(trainer.model)
    return model, trainer.state.global_step, trainer.state.log_history, trainer.tokens_seen


# -- cost next to retraining -------------------------------------------------------------


def find_retrain_model(model, task: UnlearnTask, config: UNDOConfig) -> Path | None:
    """The retain model the cost is compared to: ``retrain_model``, else ``../retain-<forget>``
    or ``../retain`` next to the model being unlearned (the run directory's layout)."""
    if config.retrain_model:
        path = Path(config.retrain_model)
        if not (path / "config.json").is_file():
            raise UserError(f"retrain_model {path} is not a model directory")
        return path
    origin = getattr(model, "name_or_path", "") or ""
    if not origin or not Path(origin).is_dir():
        return None
    for name in (f"retain-{task.forget}", "retain"):
        candidate = Path(origin).parent / name
        if (candidate / "obliviate_config.json").is_file():
            return candidate
    return None


def retrain_cost(path: Path | None, tokenizer, task: UnlearnTask) -> dict:
    """Steps, seconds and tokens (epochs x tokens of its training documents) of the retrain."""
    if path is None:
        return {"retrain_model": None}
    run = read_run_config(path)
    cost: dict = {"retrain_model": str(path), "retrain_steps": run.get("steps"), "retrain_seconds": run.get("seconds")}
    sources = (run.get("inputs") or {}).get("sources")
    epochs = (run.get("train") or {}).get("epochs")
    if sources is not None and epochs is not None:
        docs = task.world.docs_for({int(s) for s in sources})
        per_epoch = sum(len(ids) for ids in tokenizer([d["text"] for d in docs], add_special_tokens=True)["input_ids"])
        cost["retrain_tokens"] = int(round(float(epochs) * per_epoch))
    return cost


def ratio(part, whole):
    return None if part is None or not whole else round(float(part) / float(whole), 4)


@register
class UNDO(UnlearningMethod):
    name = UNDO_NAME
    config_class = UNDOConfig
    summary = "unlearn with a base method, noise the weights, distill the unlearned model into the noised copy"

    @classmethod
    def check_settings(cls, config) -> None:
        validate_undo(config)

    def unlearn(self, model, tokenizer, task: UnlearnTask) -> UnlearnResult:
        config = self.config
        self.check_settings(config)
        base = base_method(config)
        examples = distill_examples(tokenizer, task, config)
        if not examples:
            raise UserError(f"undo: no retain data to distill on (distill_data={config.distill_data!r}: the split "
                            f"{task.forget!r} leaves no retain QA items or documents)")
        retrain = find_retrain_model(model, task, config)

        started = time.perf_counter()
        taught = base.run(model, tokenizer, task)
        base_seconds = time.perf_counter() - started
        teacher = taught.model
        student = copy.deepcopy(teacher)
        perturb_model(student, config.alpha, config.beta, config.seed)
        set_seed(config.seed)
        started = time.perf_counter()
        student, steps, history, tokens = distill(student, teacher, tokenizer, examples, config, task.callbacks)
        distill_seconds = time.perf_counter() - started
        del teacher

        cost = retrain_cost(retrain, tokenizer, task)
        report = {
            "base": config.base, "base_steps": taught.steps, "base_report": taught.report,
            "alpha": config.alpha, "beta": config.beta, "distill_examples": len(examples),
            "distill_steps": steps, "distill_tokens": tokens,
            "base_seconds": round(base_seconds, 2), "distill_seconds": round(distill_seconds, 2),
            **cost,
            # a distillation token costs a student forward+backward and a teacher forward: ~4/3 of a training token
            "distill_tokens_vs_retrain": ratio(tokens, cost.get("retrain_tokens")),
            "cost_vs_retrain_seconds": ratio(base_seconds + distill_seconds, cost.get("retrain_seconds")),
        }
        base_history = [{**entry, "phase": "base"} for entry in taught.log_history]
        history = base_history + [{**entry, "phase": "distill"} for entry in history]
        total_steps = None if taught.steps is None else taught.steps + steps
        return UnlearnResult(student.eval(), steps=total_steps, log_history=history, report=report)
