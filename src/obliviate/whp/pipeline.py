"""WHP end to end: reinforce -> translate -> generic labels -> fine-tune."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from obliviate.errors import UserError
from obliviate.whp.config import WHPConfig
from obliviate.whp.labels import anchor_start_tokens, compute_generic_targets, unlikelihood_tokens
from obliviate.whp.reinforced import check_same_vocabulary
from obliviate.whp.training import finetune_on_generic_labels, reinforce
from obliviate.whp.translation import translate_documents
from obliviate.world.anchors import validate_anchors

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


@dataclass
class WHPRun:
    """What ``run_whp`` hands back."""

    model: Any                        # the unlearned model (the input model, modified in place)
    reinforced: Any                   # the reinforced model (given, or trained here)
    report: WHPReport
    log_history: list[dict] = field(default_factory=list)   # the fine-tuning Trainer's log


def run_whp(model, tokenizer, texts: Sequence[str], anchors: Mapping[str, Sequence[str]], config: WHPConfig,
            reinforced=None, seed: int = 0, callbacks: Sequence = (),
            suppressed_terms: Sequence[str] = ()) -> WHPRun:
    """Unlearn ``texts`` from ``model`` (modified in place). Returns the model, the reinforced model,
    the report and the fine-tuning log (``WHPRun``).

    ``reinforced``: a model already trained on the target (else one is trained here).
    ``suppressed_terms``: target words outside the dictionary that the generic text never uses
    (see :func:`obliviate.whp.discovery.target_only_terms`), pushed down with the anchors when
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
    return WHPRun(model, reinforced, report, phase.log_history)
