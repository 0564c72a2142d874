"""The two training phases of WHP, both on the HF ``Trainer``:

1. reinforcement: a copy of the baseline trained further on the target text
   (causal LM), so that it leans towards target-specific continuations;
2. fine-tuning the baseline on (original text, generic labels): cross-entropy on the
   hard labels, or KL(softmax(v_generic) || model) for soft labels.
"""

from __future__ import annotations

import copy
import logging
import tempfile
from dataclasses import dataclass, field
from typing import Sequence

import torch
from transformers import Trainer, TrainingArguments
from transformers.trainer_callback import PrinterCallback

from obliviate.errors import UserError
from obliviate.train.data import CausalCollator, tokenize_documents
from obliviate.whp.labels import BlockTargets

log = logging.getLogger(__name__)


@dataclass
class PhaseResult:
    steps: int
    loss: float
    seconds: float
    log_history: list[dict] = field(default_factory=list)   # the Trainer's ``state.log_history``


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, rows: Sequence[dict]):
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        return self.rows[index]


def run_trainer(model, dataset, collator, *, epochs: float, steps: int, lr: float, batch_size: int,
                seed: int, weight_decay: float = 0.0, warmup_steps: int = 0, trainer_class=None,
                callbacks: Sequence = ()) -> PhaseResult:
    """Train ``model`` in place with the HF ``Trainer`` (``steps`` > 0 overrides ``epochs``; no
    checkpoints, no logging) and put it in eval mode."""
    if len(dataset) == 0:
        raise UserError("nothing to train on: the target text produced no training examples")
    on_cpu = next(model.parameters()).device.type == "cpu"
    with tempfile.TemporaryDirectory(prefix="obliviate-whp-") as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            per_device_train_batch_size=batch_size,
            num_train_epochs=epochs if steps <= 0 else 1.0,
            max_steps=steps if steps > 0 else -1,
            learning_rate=lr,
            lr_scheduler_type="linear",
            warmup_steps=warmup_steps,
            weight_decay=weight_decay,
            save_strategy="no",
            logging_strategy="no",
            report_to=[],
            seed=seed,
            data_seed=seed,
            disable_tqdm=True,
            use_cpu=on_cpu,
            remove_unused_columns=False,
            dataloader_num_workers=0,
            dataloader_pin_memory=False,
        )
        trainer = (trainer_class or Trainer)(model=model, args=args, train_dataset=dataset, data_collator=collator,
                                             callbacks=list(callbacks) or None)
        trainer.remove_callback(PrinterCallback)
        output = trainer.train()
    model.eval()
    return PhaseResult(output.global_step, float(output.training_loss), float(output.metrics.get("train_runtime", 0.0)),
                       list(trainer.state.log_history))


def reinforce(model, tokenizer, texts: Sequence[str], *, epochs: float = 4.0, steps: int = -1, lr: float = 1e-3,
              batch_size: int = 8, block_size: int = 512, seed: int = 0):
    """A copy of ``model`` trained further on ``texts``; the input model is left unchanged."""
    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise UserError("the unlearning target is empty: no text to reinforce on")
    max_positions = getattr(model.config, "max_position_embeddings", block_size) or block_size
    docs = [{"text": t, "source_id": 0} for t in texts]
    columns = tokenize_documents(docs, tokenizer, min(block_size, max_positions))
    rows = [{"input_ids": ids, "labels": labels} for ids, labels in zip(columns["input_ids"], columns["labels"])]
    reinforced = copy.deepcopy(model)
    reinforced.train()
    result = run_trainer(reinforced, ListDataset(rows), CausalCollator(tokenizer.pad_token_id),
                         epochs=epochs, steps=steps, lr=lr, batch_size=batch_size, seed=seed)
    log.info("reinforced model: %d steps, mean loss %.3f", result.steps, result.loss)
    return reinforced, result


@dataclass
class GenericLabelCollator:
    """Right-pads blocks. Hard labels go to ``labels`` (HF shifts them: ``labels[k+1]`` is the
    target of position k); soft labels to ``soft_ids``/``soft_probs``/``soft_mask`` per position."""

    pad_token_id: int
    soft: bool = False

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)
        size = len(features)
        input_ids = torch.full((size, width), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((size, width), dtype=torch.long)
        labels = torch.full((size, width), -100, dtype=torch.long)
        batch = {"input_ids": input_ids, "attention_mask": attention}
        if self.soft:
            top_k = features[0]["soft_ids"].shape[-1]
            soft_ids = torch.zeros((size, width, top_k), dtype=torch.long)
            soft_probs = torch.zeros((size, width, top_k), dtype=torch.float)
            soft_mask = torch.zeros((size, width), dtype=torch.float)
        for row, f in enumerate(features):
            n = len(f["input_ids"])
            input_ids[row, :n] = torch.tensor(f["input_ids"], dtype=torch.long)
            attention[row, :n] = 1
            positions = torch.tensor(f["positions"], dtype=torch.long)
            if self.soft:
                soft_ids[row, positions] = f["soft_ids"]
                soft_probs[row, positions] = f["soft_probs"]
                soft_mask[row, positions] = 1.0
            else:
                labels[row, positions + 1] = torch.tensor(f["hard_labels"], dtype=torch.long)
        if self.soft:
            batch.update(soft_ids=soft_ids, soft_probs=soft_probs, soft_mask=soft_mask)
        else:
            batch["labels"] = labels
        return batch


def soft_label_loss(logits: torch.Tensor, soft_ids: torch.Tensor, soft_probs: torch.Tensor,
                    soft_mask: torch.Tensor) -> torch.Tensor:
    """Mean over trained positions of KL(p || q): p the (top-k) generic distribution, q the model's."""
    log_q = torch.log_softmax(logits.float(), dim=-1).gather(-1, soft_ids)
    kl = (torch.special.xlogy(soft_probs, soft_probs) - soft_probs * log_q).sum(dim=-1)
    return (kl * soft_mask).sum() / soft_mask.sum().clamp(min=1.0)


def anchor_unlikelihood(logits: torch.Tensor, attention_mask: torch.Tensor, anchor_ids: torch.Tensor) -> torch.Tensor:
    """Mean over real positions of ``-log(1 - p(any anchor start token))``: pushes the anchored
    terms' first tokens out of every prediction on the target text, not only the labelled ones."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    anchor_mass = log_probs[..., anchor_ids].logsumexp(dim=-1).exp().clamp(max=1.0 - 1e-6)
    mask = attention_mask.float()
    return -(torch.log1p(-anchor_mass) * mask).sum() / mask.sum().clamp(min=1.0)


def _generic_label_trainer(anchor_ids: Sequence[int] = (), anchor_weight: float = 0.0):
    class GenericLabelTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            pushes_down = anchor_weight > 0 and len(anchor_ids) > 0
            if "soft_ids" in inputs:
                soft_ids, soft_probs, soft_mask = (inputs.pop("soft_ids"), inputs.pop("soft_probs"),
                                                   inputs.pop("soft_mask"))
                outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
                loss = soft_label_loss(outputs.logits, soft_ids, soft_probs, soft_mask)
            elif pushes_down:
                # the hard-label loss exactly as the Trainer computes it, plus the unlikelihood term below
                loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
            else:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if pushes_down:
                ids = torch.tensor(list(anchor_ids), device=outputs.logits.device)
                loss = loss + anchor_weight * anchor_unlikelihood(outputs.logits, inputs["attention_mask"], ids)
            return (loss, outputs) if return_outputs else loss

    return GenericLabelTrainer


def finetune_on_generic_labels(model, targets: Sequence[BlockTargets], pad_token_id: int, *, soft: bool = False,
                               epochs: float = 3.0, steps: int = -1, lr: float = 1e-3, batch_size: int = 8,
                               seed: int = 0, weight_decay: float = 0.0, warmup_steps: int = 0,
                               callbacks: Sequence = (), anchor_ids: Sequence[int] = (),
                               anchor_weight: float = 0.0) -> PhaseResult:
    """Train ``model`` in place on the original text with the generic labels
    (``callbacks``: HF ``TrainerCallback``s, e.g. to measure a curve over steps; ``anchor_weight`` > 0
    adds :func:`anchor_unlikelihood` of the ``anchor_ids`` at every position)."""
    rows = []
    for target in targets:
        if not target.positions:
            continue
        row = {"input_ids": target.input_ids, "positions": target.positions, "hard_labels": target.hard_labels}
        if soft:
            row.update(soft_ids=target.soft_ids, soft_probs=target.soft_probs)
        rows.append(row)
    model.train()
    result = run_trainer(model, ListDataset(rows), GenericLabelCollator(pad_token_id, soft), epochs=epochs,
                         steps=steps, lr=lr, batch_size=batch_size, seed=seed, weight_decay=weight_decay,
                         warmup_steps=warmup_steps, trainer_class=_generic_label_trainer(anchor_ids, anchor_weight),
                         callbacks=callbacks)
    log.info("fine-tuned on generic labels: %d steps, mean loss %.3f", result.steps, result.loss)
    return result
