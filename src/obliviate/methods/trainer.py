"""The base unlearning trainer and the shared training flow of trainer-based methods.

``UnlearnTrainer`` is a Hugging Face ``Trainer`` (so ``accelerate launch`` / ``torchrun``
with DDP, FSDP or DeepSpeed works unchanged) whose batches pair forget and retain
examples (``obliviate.methods.data``), which may hold a frozen reference model, and
whose retain term is NLL, KL to the reference, or nothing. A method subclasses it and
implements ``forget_loss``; ``TrainerMethod`` turns a method's config into a finished
run (data, optional LoRA, reference, callbacks, train, merge).
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from transformers import PrinterCallback, Trainer, TrainingArguments, set_seed

from obliviate.errors import UserError
from obliviate.methods.callbacks import (EvaluateEvery, TruthRatioStop, UnlearnProgress, forget_truth_ratio,
                                         score_in_eval_mode)
from obliviate.methods.data import PairedDataset, PartsCollator, encode_documents, encode_qa
from obliviate.methods.registry import UnlearningMethod, UnlearnResult, UnlearnTask
from obliviate.models.loading import load_model
from obliviate.models.lora import LoraSettings, apply_lora, is_peft_model, merge_lora
from obliviate.tracking import EVALUATIONS_FILE, Tracking
from obliviate.train.losses import kl_to_reference, nll_loss

RETAIN_LOSSES = ("nll", "kl", "none")
DATA_KINDS = ("qa", "docs")


@dataclass
class UnlearnConfig:
    """Settings shared by every trainer-based method (``--set key=value`` overrides them)."""

    lr: float = 1e-4
    max_steps: int = 20
    batch_size: int = 8                 # forget examples per device and step, each paired with a retain one
    gradient_accumulation_steps: int = 1
    weight_decay: float = 0.0
    warmup_steps: int = 0
    lr_scheduler: str = "constant"      # any transformers scheduler name
    max_grad_norm: float = 1.0
    max_length: int = 512
    seed: int = 0
    bf16: bool = False
    gradient_checkpointing: bool = False
    forget_data: str = "qa"             # "qa": QA items of the forget sources; "docs": their documents
    retain_data: str = "qa"
    retain_loss: str = "nll"            # "nll", "kl" (to the frozen reference) or "none"
    retain_weight: float = 1.0
    stop_truth_ratio: float | None = None   # stop once the forget truth ratio reaches this
    eval_every: int = 5                 # steps between truth-ratio checks
    progress: bool = True
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_target_modules: list[str] | None = None


def check_non_negative(config, names: tuple[str, ...]) -> None:
    """Raise ``UserError`` for a coefficient of ``config`` that is negative (or not a number)."""
    for name in names:
        value = getattr(config, name)
        if not value >= 0:   # also catches NaN
            raise UserError(f"{name} must be >= 0, got {value}")


def validate_config(config: UnlearnConfig, retain_losses: tuple[str, ...] = RETAIN_LOSSES) -> None:
    checks = [
        (config.retain_loss in retain_losses, f"retain_loss must be one of {', '.join(retain_losses)}, got {config.retain_loss!r}"),
        (config.forget_data in DATA_KINDS, f"forget_data must be one of {', '.join(DATA_KINDS)}, got {config.forget_data!r}"),
        (config.retain_data in DATA_KINDS, f"retain_data must be one of {', '.join(DATA_KINDS)}, got {config.retain_data!r}"),
        (config.max_steps >= 1, f"max_steps must be at least 1, got {config.max_steps}"),
        (config.batch_size >= 1, f"batch_size must be at least 1, got {config.batch_size}"),
        (config.gradient_accumulation_steps >= 1, "gradient_accumulation_steps must be at least 1"),
        (config.lr > 0, f"lr must be positive, got {config.lr}"),
        (config.eval_every >= 1, f"eval_every must be at least 1, got {config.eval_every}"),
        (config.max_length >= 2, f"max_length must be at least 2, got {config.max_length}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)


# -- reference model ---------------------------------------------------------------------


class ReferenceModel:
    """Outputs of the frozen starting point that NPO, DPO, RMU and the KL term compare to."""

    def prepare(self, trainer: Trainer) -> None:
        """Place the reference where the trainer runs (called once the Trainer exists)."""

    def module(self, trainer: Trainer, model):
        """The module whose forward gives reference outputs (RMU hooks one of its layers)."""
        raise NotImplementedError

    def forward(self, trainer: Trainer, model, **inputs):
        raise NotImplementedError


class FrozenReference(ReferenceModel):
    """A separate frozen copy of the starting model (or a user-given reference model)."""

    def __init__(self, model):
        self.model = model.eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    def prepare(self, trainer: Trainer) -> None:
        # Sharded training needs the reference sharded the same way; TRL has the recipes.
        if trainer.is_deepspeed_enabled:
            from trl.models.utils import prepare_deepspeed

            self.model = prepare_deepspeed(self.model, trainer.accelerator)
        elif trainer.is_fsdp_enabled:
            from trl.models.utils import prepare_fsdp

            self.model = prepare_fsdp(self.model, trainer.accelerator)
        else:
            self.model = self.model.to(trainer.args.device)

    def module(self, trainer: Trainer, model):
        return self.model

    def forward(self, trainer: Trainer, model, **inputs):
        with torch.no_grad():
            return self.model(**inputs)


class DisabledAdapterReference(ReferenceModel):
    """With LoRA the base model with the adapter switched off is the reference: no copy."""

    def module(self, trainer: Trainer, model):
        return trainer.accelerator.unwrap_model(model)

    def forward(self, trainer: Trainer, model, **inputs):
        with torch.no_grad(), trainer.accelerator.unwrap_model(model).disable_adapter():
            return model(**inputs)


def build_reference(model, task: UnlearnTask, lora: bool) -> ReferenceModel:
    """``task.reference_path`` if given; with LoRA the adapter-free model; else a frozen copy."""
    if task.reference_path is not None:
        reference = load_model(task.reference_path, dtype=next(model.parameters()).dtype)
        sizes = (reference.get_input_embeddings().weight.shape[0], model.get_input_embeddings().weight.shape[0])
        if sizes[0] != sizes[1]:
            raise UserError(f"reference model {task.reference_path} has a vocabulary of {sizes[0]} tokens, "
                            f"the model being unlearned {sizes[1]}: they do not belong together")
        return FrozenReference(reference)
    if lora:
        return DisabledAdapterReference()
    return FrozenReference(copy.deepcopy(model))


# -- trainer -----------------------------------------------------------------------------


class UnlearnTrainer(Trainer):
    """A ``Trainer`` over paired forget/retain batches; subclasses define ``forget_loss``."""

    def __init__(self, *args, method_config: UnlearnConfig, reference: ReferenceModel | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.method_config = method_config
        self.reference = reference
        if reference is not None:
            reference.prepare(self)
        # compute_loss returns a per-batch mean: let the Trainer divide by accumulation steps
        self.loss_is_scaled_for_ga = False
        self._term_sums: dict[str, torch.Tensor] = {}
        self._term_counts: dict[str, int] = {}
        # model -> evaluation summary, run when a callback asks for an evaluation (EvaluateEvery)
        self.step_evaluation = None

    # parts of a batch --------------------------------------------------------------------
    def forward_parts(self, model, inputs: dict, names: list[str], reference: bool = False, **kwargs):
        """Run several parts of a batch through the model in one forward pass.

        Returns the model output and ``{name: slice of the batch rows}``.
        """
        input_ids = torch.cat([inputs[name]["input_ids"] for name in names])
        attention_mask = torch.cat([inputs[name]["attention_mask"] for name in names])
        rows, start = {}, 0
        for name in names:
            size = inputs[name]["input_ids"].shape[0]
            rows[name] = slice(start, start + size)
            start += size
        call = dict(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **kwargs)
        if reference:
            outputs = self.reference.forward(self, model, **call)
        else:
            outputs = model(**call)
        return outputs, rows

    def part_logits(self, model, inputs: dict, names: list[str], reference: bool = False) -> dict[str, torch.Tensor]:
        outputs, rows = self.forward_parts(model, inputs, names, reference=reference)
        return {name: outputs.logits[rows[name]] for name in names}

    # losses ------------------------------------------------------------------------------
    def uses_retain(self) -> bool:
        return self.method_config.retain_loss != "none" and self.method_config.retain_weight != 0

    def parts_to_forward(self) -> list[str]:
        """Batch parts whose logits ``loss_terms`` needs from the trained model."""
        return ["forget", "retain"] if self.uses_retain() else ["forget"]

    def forget_loss(self, model, inputs: dict, logits: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def retain_loss(self, model, inputs: dict, logits: dict[str, torch.Tensor]) -> torch.Tensor:
        retain = inputs["retain"]
        if self.method_config.retain_loss == "kl":
            ref_logits = self.part_logits(model, inputs, ["retain"], reference=True)["retain"]
            return kl_to_reference(logits["retain"], ref_logits, retain["attention_mask"])
        return nll_loss(logits["retain"], retain["labels"])

    def loss_terms(self, model, inputs: dict) -> dict[str, torch.Tensor]:
        """Named loss terms; ``"loss"`` is the total that is minimised."""
        logits = self.part_logits(model, inputs, self.parts_to_forward())
        terms = {"forget": self.forget_loss(model, inputs, logits)}
        loss = terms["forget"]
        if self.uses_retain():
            terms["retain"] = self.retain_loss(model, inputs, logits)
            loss = loss + self.method_config.retain_weight * terms["retain"]
        terms["loss"] = loss
        return terms

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        terms = self.loss_terms(model, inputs)
        for name, value in terms.items():
            if name != "loss":
                self._term_sums[name] = self._term_sums.get(name, 0.0) + value.detach().float()
                self._term_counts[name] = self._term_counts.get(name, 0) + 1
        return (terms["loss"], terms) if return_outputs else terms["loss"]

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # mean of each loss term since the last log, next to the Trainer's total "loss"
        for name, total in self._term_sums.items():
            logs[f"{name}_loss"] = round(float(total) / self._term_counts[name], 6)
        self._term_sums, self._term_counts = {}, {}
        super().log(logs, start_time)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """Unlearning has no eval dataset: the evaluation is ``step_evaluation`` (the
        evaluator's QA sections), logged as ``eval_<key>`` (the tracker shows ``eval/<key>``)
        and handed to the callbacks' ``on_evaluate``."""
        if self.step_evaluation is None:
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        summary = score_in_eval_mode(self.model, self.step_evaluation)
        metrics = {f"{metric_key_prefix}_{key}": float(value) for key, value in summary.items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool)}
        self.log(dict(metrics))
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def floating_point_ops(self, inputs: dict) -> int:
        tokens = sum(part["input_ids"].numel() for part in inputs.values() if isinstance(part, dict))
        return 6 * tokens * self.model.num_parameters(exclude_embeddings=True)


# -- the shared flow ---------------------------------------------------------------------


def _has_accelerator() -> bool:
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None and hasattr(accelerator, "is_available"):
        return bool(accelerator.is_available())
    return torch.cuda.is_available()


def training_arguments(config: UnlearnConfig, output_dir: str, **overrides: Any) -> TrainingArguments:
    values: dict[str, Any] = dict(
        # without an accelerator, `torchrun`/`accelerate launch` runs are multi-CPU (gloo) DDP
        use_cpu=not _has_accelerator(),
        output_dir=output_dir,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.lr,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_steps,
        lr_scheduler_type=config.lr_scheduler,
        max_grad_norm=config.max_grad_norm,
        max_steps=config.max_steps,
        seed=config.seed,
        data_seed=config.seed,
        bf16=config.bf16,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=_has_accelerator(),
    )
    if config.gradient_checkpointing:
        values["activation_checkpointing"] = True
    values.update(overrides)
    try:
        return TrainingArguments(**values)
    except ValueError as exc:
        raise UserError(f"bad training setting: {str(exc).splitlines()[0]}") from None


class TrainerMethod(UnlearningMethod):
    """A method trained with an ``UnlearnTrainer`` subclass."""

    trainer_class: ClassVar[type[UnlearnTrainer]] = UnlearnTrainer
    retain_losses: ClassVar[tuple[str, ...]] = RETAIN_LOSSES

    def __init__(self, config: UnlearnConfig | None = None):
        super().__init__(config)

    # hooks a method may override -----------------------------------------------------------
    def needs_reference(self) -> bool:
        return self.config.retain_loss == "kl" and self.config.retain_weight != 0

    def uses_retain_data(self) -> bool:
        return self.config.retain_loss != "none" and self.config.retain_weight != 0

    def examples(self, tokenizer, task: UnlearnTask, which: str) -> list[dict]:
        kind = self.config.forget_data if which == "forget" else self.config.retain_data
        if kind == "docs":
            docs = task.forget_docs if which == "forget" else task.retain_docs
            return encode_documents(tokenizer, docs, self.config.max_length, task.qa_format)
        items = task.forget_items if which == "forget" else task.retain_items
        return encode_qa(tokenizer, items, max_length=self.config.max_length, fmt=task.qa_format)

    def training_parts(self, tokenizer, task: UnlearnTask) -> dict[str, list[dict]]:
        parts = {"forget": self.examples(tokenizer, task, "forget")}
        if self.uses_retain_data():
            parts["retain"] = self.examples(tokenizer, task, "retain")
        return parts

    def prepare_model(self, model, task: UnlearnTask):
        """Last change before training (e.g. RMU freezes all but a few parameters)."""
        return model

    def trainer_kwargs(self, model, tokenizer, task: UnlearnTask, reference) -> dict:
        return {}

    def training_overrides(self) -> dict:
        return {}

    # the run -------------------------------------------------------------------------------
    @classmethod
    def check_settings(cls, config) -> None:
        validate_config(config, cls.retain_losses)

    @classmethod
    def check_tracking(cls, tracking: Tracking | None) -> None:
        if tracking is not None:
            tracking.check()

    @staticmethod
    def _evaluations(tracking: Tracking) -> EvaluateEvery | None:
        """The evaluations during training, or None (no ``eval_every``)."""
        if tracking.eval_every is None:
            return None
        log_file = None if tracking.log_dir is None else tracking.log_dir / EVALUATIONS_FILE
        return EvaluateEvery(tracking.eval_every, log_file, tracking.best_by, tracking.best_mode or "max")

    @staticmethod
    def _step_evaluation(tokenizer, task: UnlearnTask, tracking: Tracking):
        if tracking.evaluate is not None:
            return tracking.evaluate
        # called from Python without one: the QA sections, without the retain reference
        from obliviate.eval.config import EvalConfig
        from obliviate.eval.quick import qa_items, quick_evaluate

        config = EvalConfig(mia_gradnorm=False)
        items = qa_items(task.world, task.forget, config)
        return lambda model: quick_evaluate(model, tokenizer, task.world, task.forget, config=config, items=items)

    def unlearn(self, model, tokenizer, task: UnlearnTask) -> UnlearnResult:
        config = self.config
        self.check_settings(config)
        tracking = task.tracking if task.tracking is not None else Tracking()
        self.check_tracking(tracking)
        set_seed(config.seed)
        if config.forget_data == "qa" and not task.forget_items:
            raise UserError(f"split {task.forget!r} has no QA items to forget")
        dataset = PairedDataset(self.training_parts(tokenizer, task))
        reference = build_reference(model, task, config.lora) if self.needs_reference() else None
        if config.lora:
            model = apply_lora(model, LoraSettings(config.lora_r, config.lora_alpha, config.lora_dropout,
                                                   config.lora_target_modules))
        model = self.prepare_model(model, task)
        if not any(p.requires_grad for p in model.parameters()):
            raise UserError(f"{self.name}: no trainable parameters")
        callbacks = [UnlearnProgress(f"{self.name}")] if config.progress else []
        callbacks += list(task.callbacks)  # the caller's (run_unlearning(callbacks=...))
        if config.stop_truth_ratio is not None:
            if not task.forget_items:
                raise UserError("stop_truth_ratio needs QA items of the forget split to score")
            items = task.forget_items
            callbacks.append(TruthRatioStop(lambda m: forget_truth_ratio(m, tokenizer, items, fmt=task.qa_format),
                                            config.stop_truth_ratio, config.eval_every))
        evaluations = self._evaluations(tracking)
        if evaluations is not None:
            callbacks.append(evaluations)   # last: it sees an early stop the others asked for
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        with tempfile.TemporaryDirectory(prefix="obliviate-unlearn-") as scratch, tracking.environment():
            arguments = training_arguments(config, scratch,
                                           **{**tracking.training_arguments(), **self.training_overrides()})
            trainer = self.trainer_class(
                model=model,
                args=arguments,
                train_dataset=dataset,
                data_collator=PartsCollator(pad_token_id=int(pad_id if pad_id is not None else 0)),
                processing_class=tokenizer,
                callbacks=callbacks,
                method_config=config,
                reference=reference,
                **self.trainer_kwargs(model, tokenizer, task, reference),
            )
            trainer.remove_callback(PrinterCallback)
            if evaluations is not None:
                trainer.step_evaluation = self._step_evaluation(tokenizer, task, tracking)
            trainer.train()
        model = trainer.accelerator.unwrap_model(trainer.model)
        if is_peft_model(model):
            model = merge_lora(model)
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        steps = trainer.state.global_step
        return UnlearnResult(model.eval(), steps=steps, log_history=trainer.state.log_history,
                             evaluations=[] if evaluations is None else evaluations.evaluations,
                             checkpoint=None if evaluations is None else evaluations.selection(steps))
