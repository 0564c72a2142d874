"""RL dememorization (Kassem et al., "Preserving Privacy Through Dememorization") with TRL.

The policy is the model itself; prompts are the forget documents' prefixes; for each
prompt TRL samples ``num_generations`` continuations of the suffix's length and the reward
is minus their similarity to the true suffix (:mod:`obliviate.dememorize.reward`). The
update is TRL's GRPO (group-relative advantages) or RLOO (leave-one-out baseline), with a
KL penalty ``beta`` to a frozen copy of the starting model, so that the model moves away
from the memorised suffixes and otherwise stays what it was.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from obliviate.dememorize.data import PrefixSuffix
from obliviate.dememorize.reward import SIMILARITIES, make_reward
from obliviate.errors import UserError

log = logging.getLogger(__name__)
ALGORITHMS = ("grpo", "rloo")


@dataclass
class DememorizeConfig:
    prefix_tokens: int = 16
    suffix_tokens: int = 16
    skip_short: bool = True          # leave out documents shorter than prefix + suffix (False: UserError);
                                     # with none long enough it is a UserError either way
    max_docs: int | None = None      # use only the first N forget documents
    similarity: str = "rouge_l"      # rouge_l | bleu
    algorithm: str = "grpo"          # grpo | rloo (TRL trainers)
    beta: float = 0.1                # KL coefficient to the reference (starting) model
    learning_rate: float = 5e-4
    max_steps: int = 40
    num_generations: int = 8         # sampled continuations per prefix (a memorised model samples the
                                     # suffix almost always: it takes several samples to see alternatives)
    prompts_per_step: int = 2        # prefixes per optimizer step
    temperature: float = 1.0
    seed: int = 0

    def validate(self) -> "DememorizeConfig":
        if self.similarity not in SIMILARITIES:
            raise UserError(f"unknown similarity {self.similarity!r}; valid: {', '.join(SIMILARITIES)}")
        if self.algorithm not in ALGORITHMS:
            raise UserError(f"unknown algorithm {self.algorithm!r}; valid: {', '.join(ALGORITHMS)}")
        if self.num_generations < 2:
            raise UserError("num_generations must be >= 2 (GRPO and RLOO compare samples of one prompt)")
        if self.max_steps < 1 or self.prompts_per_step < 1:
            raise UserError("max_steps and prompts_per_step must be >= 1")
        if self.beta < 0:
            raise UserError(f"beta must be >= 0, got {self.beta}")
        return self


def prompt_text(tokenizer, piece: PrefixSuffix) -> str:
    """The prefix as the text TRL will tokenize: with the BOS written out when the
    tokenizer does not add one itself, so that the policy sees the training layout."""
    bos = tokenizer.bos_token
    if bos is None or not piece.prefix_ids or piece.prefix_ids[0] != tokenizer.bos_token_id:
        return piece.prefix_text
    adds_bos = tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]
    return piece.prefix_text if adds_bos else bos + piece.prefix_text


def _trainer_classes(algorithm: str):
    if algorithm == "grpo":
        from trl import GRPOConfig, GRPOTrainer

        return GRPOConfig, GRPOTrainer
    from trl import RLOOConfig, RLOOTrainer

    return RLOOConfig, RLOOTrainer


def dememorize(model, tokenizer, pieces: Sequence[PrefixSuffix], config: DememorizeConfig,
               reference_path: str | Path | None = None, progress: bool = False):
    """Run RL dememorization on ``pieces`` and return the trained model (in eval mode).

    The KL reference is loaded from ``reference_path`` when given, otherwise from a
    snapshot of ``model`` taken before training (TRL builds its reference from a path).
    """
    from datasets import Dataset

    config.validate()
    if not pieces:
        raise UserError("no forget documents to dememorize")
    if config.max_docs is not None:
        pieces = list(pieces)[: config.max_docs]
    suffix_length = max(len(p.suffix_ids) for p in pieces)
    dataset = Dataset.from_list([{"prompt": prompt_text(tokenizer, p), "suffix": p.suffix_text} for p in pieces])
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    config_class, trainer_class = _trainer_classes(config.algorithm)
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    if not progress:
        hf_logging.disable_progress_bar()  # the reference snapshot's save/load bars
    try:
        model, history = _train(model, tokenizer, dataset, config, config_class, trainer_class, suffix_length,
                                reference_path, progress)
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    model.eval()
    model.dememorize_history = history  # per-logging-step reward/KL, for reports
    return model


def _train(model, tokenizer, dataset, config: DememorizeConfig, config_class, trainer_class, suffix_length: int,
           reference_path, progress: bool):
    batch = config.prompts_per_step * config.num_generations
    original_name = getattr(model.config, "_name_or_path", "")
    with tempfile.TemporaryDirectory(prefix="obliviate-dememorize-") as tmp:
        if config.beta > 0:
            if reference_path is None:
                reference_path = Path(tmp) / "reference"
                model.save_pretrained(str(reference_path), safe_serialization=True)
            model.config._name_or_path = str(reference_path)  # TRL loads its KL reference from here
        dtype = next(model.parameters()).dtype
        # A memorised model's samples differ little in reward: GRPO scales advantages by the group's
        # std; RLOO does not by default and then barely moves (measured), so normalise there too.
        extra = {"normalize_advantages": True} if config.algorithm == "rloo" else {}
        args = config_class(
            output_dir=str(Path(tmp) / "trl"), per_device_train_batch_size=batch, gradient_accumulation_steps=1,
            num_generations=config.num_generations, max_completion_length=suffix_length,
            temperature=config.temperature, top_k=0, top_p=1.0, beta=config.beta,
            learning_rate=config.learning_rate, max_steps=config.max_steps, lr_scheduler_type="constant",
            warmup_steps=0, seed=config.seed, data_seed=config.seed, save_strategy="no", report_to=[],
            logging_steps=max(1, config.max_steps // 10), disable_tqdm=not progress,
            bf16=dtype == torch.bfloat16, fp16=False, gradient_checkpointing=False,
            use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, **extra,
        )
        model.train()
        trainer = trainer_class(model=model, reward_funcs=make_reward(config.similarity), args=args,
                                train_dataset=dataset, processing_class=tokenizer)
        if not progress:
            from transformers.trainer_callback import PrinterCallback, ProgressCallback

            trainer.remove_callback(PrinterCallback)  # the per-step log dicts
            trainer.remove_callback(ProgressCallback)
        try:
            trainer.train()
        finally:
            model.config._name_or_path = original_name
        history = [entry for entry in trainer.state.log_history if "reward" in entry]
        return trainer.model, history
