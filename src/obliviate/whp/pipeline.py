"""WHP end to end: reinforce -> translate -> generic labels -> fine-tune."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from obliviate.errors import UserError
from obliviate.whp.anchors import validate_anchors
from obliviate.whp.config import WHPConfig
from obliviate.whp.labels import anchor_start_tokens, compute_generic_targets, unlikelihood_tokens
from obliviate.whp.training import finetune_on_generic_labels, reinforce
from obliviate.whp.translation import translate_documents

log = logging.getLogger(__name__)


@dataclass
class WHPReport:
    """What a run did, for logs and run configs."""

    anchors: int = 0
    documents: int = 0
    blocks: int = 0
    tokens: int = 0
    translated_occurrences: int = 0
    repeated_occurrences: int = 0     # 2nd+ occurrences of a term in its block
    unaligned_occurrences: int = 0
    suppressed_terms: int = 0         # target-only terms pushed down by the unlikelihood term
    unlikelihood_tokens: int = 0      # tokens the fine-tuning pushes down everywhere
    trained_positions: int = 0
    label_agreement: float = 0.0      # share of generic labels equal to the original next token
    reinforce_steps: int = 0
    reinforce_loss: float | None = None
    finetune_steps: int = 0
    finetune_loss: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def check_same_vocabulary(base_model, other_model, tokenizer, what: str = "reinforced model") -> None:
    from obliviate.models.loading import check_vocab

    base_vocab = base_model.get_output_embeddings().weight.shape[0]
    other_vocab = other_model.get_output_embeddings().weight.shape[0]
    if base_vocab != other_vocab:
        raise UserError(f"the {what} has a vocabulary of {other_vocab} tokens but the base model has {base_vocab}: "
                        "it must be the base model trained further, with the same tokenizer")
    check_vocab(other_model, tokenizer, where=what)


def load_reinforced(path: str | Path, base_model, tokenizer):
    """Load a saved reinforced model on the base model's device; UserError if it does not fit the base."""
    from obliviate.models.loading import load_model

    parameter = next(base_model.parameters())
    reinforced = load_model(path, device=parameter.device, dtype=parameter.dtype)
    check_same_vocabulary(base_model, reinforced, tokenizer)
    saved_tokenizer = Path(path) / "tokenizer.json"
    if saved_tokenizer.is_file():
        from obliviate.models.loading import load_tokenizer

        other = load_tokenizer(path)
        if other.get_vocab() != tokenizer.get_vocab():
            raise UserError(f"the reinforced model in {path} was saved with another tokenizer than the base model's")
    return reinforced


def run_whp(model, tokenizer, texts: Sequence[str], anchors: Mapping[str, Sequence[str]], config: WHPConfig,
            reinforced=None, seed: int = 0, callbacks: Sequence = (),
            suppressed_terms: Sequence[str] = ()) -> tuple[object, object, WHPReport]:
    """Unlearn ``texts`` from ``model`` (modified in place). Returns (model, reinforced model, report).

    ``reinforced``: a model already trained on the target (else one is trained here).
    ``suppressed_terms``: target words outside the dictionary that the generic text never uses
    (see :func:`obliviate.methods.whp.target_only_terms`), pushed down with the anchors when
    ``config.anchor_unlikelihood`` > 0.
    ``callbacks``: HF ``TrainerCallback``s for the fine-tuning phase (e.g. a familiarity curve).
    """
    config.validate()
    anchors = validate_anchors(dict(anchors))
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        raise UserError("the unlearning target is empty: no target text to unlearn")
    if tokenizer.pad_token_id is None:
        raise UserError("the tokenizer has no pad token (and no eos token to use as one)")
    report = WHPReport(anchors=len(anchors))
    timer = time.perf_counter()

    if reinforced is None:
        reinforced, phase = reinforce(model, tokenizer, texts, epochs=config.reinforce_epochs,
                                      steps=config.reinforce_steps, lr=config.reinforce_lr,
                                      batch_size=config.batch_size, block_size=config.block_size, seed=seed)
        report.reinforce_steps, report.reinforce_loss = phase.steps, phase.loss
    else:
        check_same_vocabulary(model, reinforced, tokenizer)
    report.seconds["reinforce"] = round(time.perf_counter() - timer, 2)

    timer = time.perf_counter()
    max_positions = getattr(model.config, "max_position_embeddings", config.block_size) or config.block_size
    blocks, stats = translate_documents(texts, tokenizer, anchors, min(config.block_size, max_positions), seed,
                                        spare_text_tokens=config.spare_text_tokens,
                                        train_repeated_anchor_predictions=config.train_repeated_anchor_predictions)
    report.documents, report.blocks, report.tokens = stats.documents, stats.blocks, stats.tokens
    report.translated_occurrences, report.unaligned_occurrences = stats.translated, stats.unaligned
    report.repeated_occurrences = stats.repeated
    if stats.translated == 0:
        log.warning("no anchored term occurs in the target text: only the reinforcement term (alpha) shapes the labels")
    if stats.unaligned:
        log.warning("%d anchor occurrences do not fall on token boundaries and were left untranslated", stats.unaligned)
    report.seconds["translate"] = round(time.perf_counter() - timer, 2)

    timer = time.perf_counter()
    anchor_tokens = anchor_start_tokens(tokenizer, anchors) if config.forbid_anchor_tokens else []
    targets = compute_generic_targets(model, reinforced, blocks, alpha=config.alpha, soft=config.soft_labels,
                                      soft_top_k=config.soft_top_k, batch_size=config.label_batch_size,
                                      pad_id=tokenizer.pad_token_id, anchor_tokens=anchor_tokens)
    pushed_down = unlikelihood_tokens(tokenizer, anchor_start_tokens(tokenizer, anchors), suppressed_terms) \
        if config.anchor_unlikelihood > 0 else []
    report.suppressed_terms, report.unlikelihood_tokens = len(suppressed_terms), len(pushed_down)
    report.trained_positions = sum(len(t.positions) for t in targets)
    if report.trained_positions == 0:
        raise UserError("the target text is too short: no position to train (each block needs 2+ tokens)")
    report.label_agreement = round(
        sum(t.agreement() * len(t.positions) for t in targets) / report.trained_positions, 4)
    report.seconds["labels"] = round(time.perf_counter() - timer, 2)

    timer = time.perf_counter()
    phase = finetune_on_generic_labels(model, targets, tokenizer.pad_token_id, soft=config.soft_labels,
                                       epochs=config.finetune_epochs, steps=config.finetune_steps, lr=config.lr,
                                       batch_size=config.batch_size, seed=seed, weight_decay=config.weight_decay,
                                       warmup_steps=config.warmup_steps, callbacks=callbacks,
                                       anchor_ids=pushed_down, anchor_weight=config.anchor_unlikelihood)
    report.finetune_steps, report.finetune_loss = phase.steps, phase.loss
    report.seconds["finetune"] = round(time.perf_counter() - timer, 2)
    log.info("WHP: %d blocks, %d anchor occurrences translated, %d positions, label agreement %.3f",
             report.blocks, report.translated_occurrences, report.trained_positions, report.label_agreement)
    return model, reinforced, report
