"""Training from scratch (or continued training of any local HF causal LM) with the
HF ``Trainer``, so ``accelerate launch`` scales it unchanged. Models are cached by
content: the same world, sources and config reuse the saved model; an interrupted
run resumes from its last checkpoint."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from obliviate.artifacts import fingerprint, is_model_dir
from obliviate.config import config_to_dict
from obliviate.data.format import ChatOptions, qa_format, resolve_chat_template
from obliviate.errors import UserError
from obliviate.models.loading import load_model, read_run_config, save_model
from obliviate.models.presets import MODEL_PRESETS, llama_config
from obliviate.models.sinks import SinkForCausalLM, sink_config_from_llama
from obliviate.tracking import Tracking, place_logs
from obliviate.train.data import CausalCollator, tokenize_documents

log = logging.getLogger(__name__)


@dataclass
class SinkKnobs:
    """Native-sink architecture settings (used when ``arch == "sinks"``)."""

    p_gen: float = 0.5
    p_mem: float = 0.1
    sink_dropout: float = 0.05
    sink_layers: str = "all"
    hash_key: int = 0


# Per world preset: epochs and learning rate that make a model of that preset learn
# its world's facts (measured; see README "Figures").
EPOCHS_BY_PRESET = {"micro": 25.0, "tiny": 25.0, "small": 15.0}
LR_BY_PRESET = {"micro": 5e-3, "tiny": 5e-3, "small": 2e-3}


@dataclass
class TrainConfig:
    preset: str = "tiny"                 # model size preset (micro/tiny/small)
    arch: str = "dense"                  # dense | sinks
    epochs: float | None = None          # default by preset
    learning_rate: float | None = None   # default by preset
    batch_size: int = 16
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    block_size: int = 512
    seed: int = 0
    save_steps: int = 200                # checkpoint period, for resuming
    # QA documents in the tokenizer's chat template (None: automatic, see resolve_chat_template)
    chat_template: bool | None = None
    chat_options: ChatOptions = field(default_factory=ChatOptions)   # its system prompt and date
    sinks: SinkKnobs = field(default_factory=SinkKnobs)

    def resolved(self) -> "TrainConfig":
        """The config with the preset's defaults filled in, validated (a UserError names the setting)."""

        if self.arch not in ("dense", "sinks"):
            raise UserError(f"unknown architecture {self.arch!r}; valid: dense, sinks")
        resolved = replace(
            self,
            epochs=self.epochs if self.epochs is not None else EPOCHS_BY_PRESET.get(self.preset, 20.0),
            learning_rate=self.learning_rate if self.learning_rate is not None else LR_BY_PRESET.get(self.preset, 1e-3),
        )
        resolved.validate()
        # one number, one cache key: `epochs=2` from Python and `--set epochs=2.0` train the same model
        return replace(resolved, epochs=float(resolved.epochs), learning_rate=float(resolved.learning_rate))

    def validate(self) -> None:
        """Sizes and rates must make sense: a batch of 0 divides by zero, 0 epochs would still
        train one step, a rate <= 0 never learns. (The sink knobs are checked by
        ``obliviate.models.sinks`` when the model is built.)"""
        import math

        def finite(value) -> bool:
            return isinstance(value, (int, float)) and math.isfinite(value)

        checks = [
            (isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size must be at least 1", self.batch_size),
            (self.epochs is None or (finite(self.epochs) and self.epochs > 0), "epochs must be > 0", self.epochs),
            (self.learning_rate is None or (finite(self.learning_rate) and self.learning_rate > 0),
             "learning_rate must be > 0", self.learning_rate),
            (finite(self.warmup_ratio) and 0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)",
             self.warmup_ratio),
            (finite(self.weight_decay) and self.weight_decay >= 0, "weight_decay must be >= 0", self.weight_decay),
            (isinstance(self.block_size, int) and self.block_size >= 2, "block_size must be at least 2",
             self.block_size),
            (isinstance(self.save_steps, int) and self.save_steps >= 1, "save_steps must be at least 1",
             self.save_steps),
        ]
        for ok, message, value in checks:
            if not ok:
                raise UserError(f"bad training setting: {message}, got {value!r}")


@dataclass
class TrainResult:
    path: Path
    reused: bool
    seconds: float
    steps: int
    cache_key: str
    logs: Path | None = None   # the tracker's files (--report-to), if any


def _build_fresh_model(config: TrainConfig, tokenizer):
    from transformers import LlamaForCausalLM


    if config.preset not in MODEL_PRESETS:
        raise UserError(f"unknown model preset {config.preset!r}; valid: {', '.join(MODEL_PRESETS)}")
    llama = llama_config(config.preset, tokenizer)
    torch.manual_seed(config.seed)
    if config.arch == "dense":
        return LlamaForCausalLM(llama)

    knobs = config_to_dict(config.sinks)
    return SinkForCausalLM(sink_config_from_llama(llama, **knobs))


def _quiet_progress_callback():
    """The Trainer's progress bar, with the loss in the bar instead of a dict printed per log."""
    from transformers.trainer_callback import ProgressCallback

    class _LossInBar(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and self.training_bar is not None and logs and "loss" in logs:
                self.training_bar.set_postfix(loss=f"{float(logs['loss']):.3f}", refresh=False)

    return _LossInBar


def _interrupt_callback(stop_after: int | None):
    """Test hook: simulate an interruption after ``stop_after`` optimizer steps."""
    from transformers import TrainerCallback

    class _Interrupt(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if stop_after is not None and state.global_step >= stop_after:
                raise KeyboardInterrupt(f"simulated interruption at step {state.global_step}")

    return _Interrupt()


def _cache_key(config: TrainConfig, cache_inputs: dict, init_model: Path | None) -> str:
    """The content key of a training run: inputs, resolved config and starting model."""
    return fingerprint({"inputs": cache_inputs, "config": config_to_dict(config),
                        "init_model": str(init_model) if init_model else None, "format": 1})


def _starting_model(config: TrainConfig, tokenizer, init_model: Path | None):
    """The model to train, in training mode: ``init_model`` loaded, else a fresh one."""
    model = load_model(init_model) if init_model else _build_fresh_model(config, tokenizer)
    model.train()
    return model


def _training_dataset(docs: list[dict], tokenizer, config: TrainConfig, model):
    """The tokenized documents as a ``datasets.Dataset``, blocks capped at the model's context."""
    from datasets import Dataset

    block_size = min(config.block_size, getattr(model.config, "max_position_embeddings", 512))
    fmt = qa_format(tokenizer, bool(config.chat_template), config.chat_options)
    return Dataset.from_dict(tokenize_documents(docs, tokenizer, block_size, fmt))


def _total_steps(n_examples: int, config: TrainConfig) -> int:
    """Optimizer steps for ``config.epochs`` passes over ``n_examples`` (at least one)."""
    steps_per_epoch = max(1, -(-n_examples // config.batch_size))
    return max(1, int(round(config.epochs * steps_per_epoch)))


def _training_arguments(config: TrainConfig, checkpoint_root: Path, total_steps: int, progress: bool,
                        tracking: Tracking | None = None):
    """The HF ``TrainingArguments``: cosine schedule, periodic checkpoints, seeded, reporting
    to ``tracking``'s tracker (none by default)."""
    from transformers import TrainingArguments

    from accelerate import PartialState

    reporting = (tracking or Tracking()).training_arguments()
    return TrainingArguments(
        output_dir=str(checkpoint_root),
        # batch_size is the global batch: under `accelerate launch` each of N processes takes
        # 1/N of it, so the step count and schedule match a one-process run
        per_device_train_batch_size=max(1, -(-config.batch_size // PartialState().num_processes)),
        max_steps=total_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=int(config.warmup_ratio * total_steps),
        weight_decay=config.weight_decay,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=1,
        logging_steps=max(1, total_steps // 20),
        seed=config.seed,
        data_seed=config.seed,
        disable_tqdm=not progress,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        # DDP: a dense model uses every parameter (no extra autograd pass); sink units may sit idle
        ddp_find_unused_parameters=config.arch != "dense",
        # documents range from one QA pair (~30 tokens) to a biography (~400): batching
        # similar lengths together avoids training mostly on padding
        train_sampling_strategy="group_by_length",
        **reporting,
    )


def _make_trainer(model, args, dataset, tokenizer, progress: bool, stop_after_steps: int | None):
    """The HF ``Trainer``, with the quiet progress bar (or none) instead of the default printers."""
    from transformers import Trainer
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from transformers.utils import logging as hf_logging

    callbacks = [_interrupt_callback(stop_after_steps)] if stop_after_steps is not None else []
    trainer = Trainer(model=model, args=args, train_dataset=dataset,
                      data_collator=CausalCollator(tokenizer.pad_token_id), callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if progress:
        trainer.add_callback(_quiet_progress_callback())
    else:
        hf_logging.disable_progress_bar()
    return trainer


def _run_trainer(trainer, checkpoint_root: Path) -> tuple[float, bool]:
    """Train, resuming from a checkpoint under ``checkpoint_root`` if one exists; returns
    (seconds, resumed). A checkpoint that cannot be resumed is a UserError."""
    resume = any(checkpoint_root.glob("checkpoint-*"))
    started = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=True if resume else None)
    except (ValueError, RuntimeError, OSError) as exc:
        if resume and ("checkpoint" in str(exc).lower() or "safetensors" in str(exc).lower()):
            raise UserError(
                f"cannot resume from {checkpoint_root} ({str(exc).splitlines()[0]}); delete it to start over"
            ) from None
        raise
    return time.perf_counter() - started, resume


def _save_trained(trainer, tokenizer, out_dir: Path, run_config: dict, after_training: Callable | None) -> bool:
    """Put the trained model in eval mode, run the ``after_training`` hook (every process: it is
    deterministic), then save it with ``run_config`` from the main process alone; returns whether
    this process saved. A sharded model (FSDP, DeepSpeed ZeRO-3) is gathered whole first with
    ``accelerator.get_state_dict``, which every process must call."""
    from accelerate.utils import DistributedType

    accelerator = trainer.accelerator
    model = accelerator.unwrap_model(trainer.model)
    model.eval()
    if after_training is not None:
        after_training(model)
    sharded = accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
    state_dict = accelerator.get_state_dict(trainer.model_wrapped) if sharded else None
    if accelerator.is_main_process:
        save_model(model, tokenizer, out_dir, run_config=run_config, state_dict=state_dict)
    accelerator.wait_for_everyone()   # the others return only once the model is on disk
    return accelerator.is_main_process


def train_model(
    docs: list[dict],
    tokenizer,
    out_dir: Path,
    config: TrainConfig,
    *,
    cache_inputs: dict,
    init_model: Path | None = None,
    progress: bool = True,
    after_training: Callable | None = None,
    report_to: str = "none",
    _stop_after_steps: int | None = None,
) -> TrainResult:
    """Train on ``docs`` (``[{"text", "source_id"}]``) and save to ``out_dir``.

    ``cache_inputs`` (world fingerprint, source ids, tokenizer fingerprint) plus the
    config form the cache key; a saved model with the same key is reused. ``report_to``
    (none, tensorboard, wandb) logs training to that tracker, into ``out_dir/logs``
    (kept with the checkpoints until the model is saved, so a resumed run continues them);
    it is not part of the cache key.
    """
    config = config.resolved()
    recorded = read_run_config(init_model) if init_model else {}
    chat = resolve_chat_template(config.chat_template, tokenizer, recorded.get("chat_template"))
    config = replace(config, chat_template=chat,
                     chat_options=config.chat_options.over(recorded.get("chat_options")) if chat else ChatOptions())
    key = _cache_key(config, cache_inputs, init_model)
    if is_model_dir(out_dir) and read_run_config(out_dir).get("cache_key") == key:
        return TrainResult(out_dir, True, 0.0, 0, key)

    checkpoint_root = out_dir.parent / f".ckpt-{out_dir.name}-{key[:12]}"
    model = _starting_model(config, tokenizer, init_model)
    dataset = _training_dataset(docs, tokenizer, config, model)
    total_steps = _total_steps(len(dataset), config)
    tracking = Tracking(report_to=report_to, log_dir=checkpoint_root / "logs", run_name=out_dir.name)
    with tracking.environment():
        args = _training_arguments(config, checkpoint_root, total_steps, progress, tracking)
        trainer = _make_trainer(model, args, dataset, tokenizer, progress, _stop_after_steps)
        seconds, resume = _run_trainer(trainer, checkpoint_root)
    run_config = {"cache_key": key, "train": config_to_dict(config), "inputs": cache_inputs,
                  # the QA format every later command uses
                  "chat_template": config.chat_template, "chat_options": asdict(config.chat_options),
                  "init_model": str(init_model) if init_model else None, "steps": total_steps,
                  "seconds": round(seconds, 2), "resumed": resume,
                  # how it ran (not part of the cache key), as `unlearn` records it: e.g. FSDP, 2
                  "distributed_type": str(trainer.accelerator.distributed_type.value),
                  "num_processes": trainer.accelerator.num_processes}
    logs = None
    if _save_trained(trainer, tokenizer, out_dir, run_config, after_training):
        logs = place_logs(checkpoint_root / "logs", out_dir)
        shutil.rmtree(checkpoint_root, ignore_errors=True)
    return TrainResult(out_dir, False, seconds, total_steps, key, logs)


def describe(result: TrainResult) -> str:
    how = "reused (same config)" if result.reused else f"trained {result.steps} steps in {result.seconds:.1f}s"
    logs = f"; logs -> {result.logs}" if result.logs is not None else ""
    return f"{result.path}: {how}{logs}"
