"""'Who's Harry Potter' (Eldan & Russinovich, 2023) as a registered unlearning method.

``obliviate unlearn --method whp --forget saga ...``: reinforce the model on the
target documents, translate anchored terms into generic alternatives block by
block, build generic labels and fine-tune the model on them. Everything lives in
``obliviate.whp``; this module only resolves the task's inputs. Without a dictionary
(``--set anchors_path=FILE`` or the world's anchors.json, as in a text world), automatic
discovery proposes one and writes it to ``OUT.anchors.json`` for a person to edit and reuse;
``--set discover_extra_anchors=K`` adds discovery's top K terms to a given dictionary (written there too).
Fine-tuning also pushes the anchors' first tokens, and the target-only words among discovery's top
``suppress_target_terms``, down at every position (``anchor_unlikelihood``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from obliviate.errors import UserError
from obliviate.io import atomic_write_json
from obliviate.methods.registry import UnlearningMethod, UnlearnResult, UnlearnTask, register
from obliviate.models.loading import save_model
from obliviate.whp.config import DiscoveryConfig, WHPConfig
from obliviate.whp.discovery import discover_anchors, target_only_terms, with_discovered_terms
from obliviate.whp.pipeline import run_whp
from obliviate.whp.reinforced import load_reinforced
from obliviate.whp.text_files import read_text_files
from obliviate.whp.training import reinforce
from obliviate.world.anchors import AnchorDict, load_anchors, validate_anchors

log = logging.getLogger(__name__)


def target_texts(task: UnlearnTask, config: WHPConfig) -> list[str]:
    if config.target_paths:
        return read_text_files(config.target_paths)
    texts = [doc["text"] for doc in task.forget_docs if doc.get("text", "").strip()]
    if not texts:
        raise UserError(f"the unlearning target is empty: the forget split {task.forget!r} has no documents with text")
    return texts


def _world_anchors(task: UnlearnTask) -> dict | None:
    return getattr(task.world, "anchors", None) if task.world is not None else None


def discovers_anchors(task: UnlearnTask, config: WHPConfig) -> bool:
    """Whether the dictionary comes from automatic discovery: no ``anchors_path``, no
    world dictionary, and discovery not switched off (``auto_anchors=false``)."""
    return not config.anchors_path and not _world_anchors(task) and config.auto_anchors is not False


def proposed_anchors_path(task: UnlearnTask) -> Path | None:
    """Where a discovered dictionary is written: ``OUT.anchors.json`` next to the output model."""
    if task.out_dir is None:
        return None
    out = Path(task.out_dir)
    return out.with_name(out.name + ".anchors.json")


def given_anchors(task: UnlearnTask, config: WHPConfig) -> AnchorDict | None:
    """The dictionary a person gave: ``anchors_path``, else the world's anchors.json; None if neither."""
    if config.anchors_path:
        return load_anchors(config.anchors_path)
    world_anchors = _world_anchors(task)
    if world_anchors:
        return validate_anchors(world_anchors, where="the world's anchors.json")
    return None


def propose_anchors(task: UnlearnTask, config: WHPConfig, model, tokenizer, texts, reinforced) -> AnchorDict:
    """No dictionary given: automatic discovery proposes one (the task's retain documents are the
    generic text), written to ``OUT.anchors.json`` for a person to edit and reuse."""
    generic = [doc["text"] for doc in task.retain_docs]
    found = discover_anchors(model, reinforced, tokenizer, texts, generic,
                             DiscoveryConfig(top=config.auto_anchors_top, block_size=config.block_size))
    if not found.anchors:
        raise UserError("no anchored-term dictionary: the world has no anchors.json and automatic discovery found "
                        "no term specific to the target; pass --set anchors_path=FILE")
    # a person can edit the proposal and reuse it with --set anchors_path=FILE
    path = proposed_anchors_path(task)
    if path is not None:
        atomic_write_json(path, found.anchors)
    log.warning("WHP: no anchored-term dictionary given, automatic discovery proposed %d terms (%s)%s",
                len(found.anchors), ", ".join(list(found.anchors)[:5]) + (", ..." if len(found.anchors) > 5 else ""),
                f"; written to {path} (edit it and pass --set anchors_path={path})" if path else "")
    return found.anchors


def extend_with_discovery(task: UnlearnTask, config: WHPConfig, anchors: AnchorDict, model, tokenizer, texts,
                          reinforced) -> tuple[AnchorDict, AnchorDict]:
    """``discover_extra_anchors``: a given dictionary names the saga's entities, but the target's theme
    words and name parts ("spell", "dark", "Femlihall") keep their saga meaning unless they get generic
    translations too; discovery ranks them, the top ``discover_extra_anchors`` the dictionary lacks are added.
    Returns (merged dictionary, the added terms)."""
    generic = [doc["text"] for doc in task.retain_docs]
    found = discover_anchors(model, reinforced, tokenizer, texts, generic,
                             DiscoveryConfig(top=config.discover_extra_anchors, block_size=config.block_size))
    merged, added = with_discovered_terms(anchors, found.anchors, config.discover_extra_anchors)
    path = proposed_anchors_path(task)
    if path is not None and added:
        atomic_write_json(path, merged)
    log.warning("WHP: discovery added %d terms to the dictionary (%s)%s", len(added),
                ", ".join(list(added)[:8]) + (", ..." if len(added) > 8 else ""),
                f"; the whole dictionary is written to {path}" if path is not None and added else "")
    return merged, added


def suppression_terms(task: UnlearnTask, config: WHPConfig, anchors: AnchorDict, model, tokenizer, texts,
                      reinforced) -> list[str]:
    """``suppress_target_terms`` for a task: its retain documents are the generic text."""
    generic = [doc["text"] for doc in task.retain_docs if doc.get("text", "").strip()]
    if not generic:
        log.warning("WHP: no generic (retain) text to tell target-only words apart: suppress_target_terms skipped")
        return []
    terms = target_only_terms(model, reinforced, tokenizer, texts, generic, anchors, config.suppress_target_terms,
                              config.block_size)
    log.info("WHP: %d target-only terms pushed down with the anchors (%s)", len(terms),
             ", ".join(terms[:8]) + (", ..." if len(terms) > 8 else ""))
    return terms


@register
class WHP(UnlearningMethod):
    name = "whp"
    config_class = WHPConfig
    summary = "Who's Harry Potter: fine-tune on generic labels from a reinforced model and anchored-term translation"

    def unlearn(self, model, tokenizer, task: UnlearnTask) -> UnlearnResult:
        """``UnlearnResult.report``: the ``WHPReport`` fields, plus what discovery decided when it ran:
        ``whp_discovered_anchors`` (the proposed dictionary), ``whp_extra_anchors`` (terms added to a
        given one), ``whp_suppressed_terms`` (target-only terms pushed down with the anchors)."""
        config: WHPConfig = self.config
        config.validate()
        seed = config.seed
        texts = target_texts(task, config)
        anchors = given_anchors(task, config)
        if anchors is None and not discovers_anchors(task, config):
            raise UserError("no anchored-term dictionary: the world has no anchors.json and auto_anchors=false; pass "
                            "--set anchors_path=FILE (see `obliviate whp anchors`)")
        reinforced = None
        if config.reinforced_model_path:
            reinforced = load_reinforced(config.reinforced_model_path, model, tokenizer)
        suppress = config.anchor_unlikelihood > 0 and config.suppress_target_terms > 0
        if reinforced is None and (anchors is None or config.discover_extra_anchors > 0 or suppress):
            # discovery needs the reinforced model: train it once and reuse it below
            reinforced, _ = reinforce(model, tokenizer, texts, epochs=config.reinforce_epochs,
                                      steps=config.reinforce_steps, lr=config.reinforce_lr,
                                      batch_size=config.batch_size, block_size=config.block_size, seed=seed)
        discovered: dict = {}   # what discovery decided, for the report
        if anchors is None:
            anchors = discovered["whp_discovered_anchors"] = propose_anchors(task, config, model, tokenizer, texts,
                                                                             reinforced)
        elif config.discover_extra_anchors > 0:
            anchors, discovered["whp_extra_anchors"] = extend_with_discovery(task, config, anchors, model, tokenizer,
                                                                             texts, reinforced)
        suppressed: list[str] = []
        if suppress:
            suppressed = discovered["whp_suppressed_terms"] = suppression_terms(task, config, anchors, model,
                                                                                tokenizer, texts, reinforced)
        outcome = run_whp(model, tokenizer, texts, anchors, config, reinforced=reinforced, seed=seed,
                          callbacks=task.callbacks, suppressed_terms=suppressed)
        if config.save_reinforced_path and not config.reinforced_model_path:
            save_model(outcome.reinforced, tokenizer, config.save_reinforced_path,
                       run_config={"whp_reinforced": True, "reinforce_epochs": config.reinforce_epochs,
                                   "reinforce_steps": config.reinforce_steps, "reinforce_lr": config.reinforce_lr})
        report = outcome.report
        return UnlearnResult(outcome.model, steps=report.finetune_steps, log_history=outcome.log_history,
                             report={**report.to_dict(), **discovered})
