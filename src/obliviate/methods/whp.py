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
from obliviate.methods.registry import UnlearningMethod, UnlearnTask, register
from obliviate.whp.anchors import AnchorDict, load_anchors, validate_anchors
from obliviate.whp.config import WHPConfig
from obliviate.whp.pipeline import load_reinforced, run_whp

log = logging.getLogger(__name__)


def read_text_files(paths) -> list[str]:
    """User text files as target documents (one document per file); UserError if unusable."""
    texts = []
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise UserError(f"target text file not found: {path}")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise UserError(f"target text file {path} is not UTF-8 text") from None
        if not text.strip():
            raise UserError(f"target text file {path} is empty")
        texts.append(text)
    return texts


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


def with_discovered_terms(anchors: AnchorDict, discovered: AnchorDict, count: int) -> tuple[AnchorDict, AnchorDict]:
    """``anchors`` plus the first ``count`` discovered terms it lacks (its own alternatives win).
    Returns (merged dictionary, the added terms)."""
    added = {term: list(alts) for term, alts in list(discovered.items())[:count] if term not in anchors}
    return {**anchors, **added}, added


def extend_with_discovery(task: UnlearnTask, config: WHPConfig, anchors: AnchorDict, model, tokenizer, texts,
                          reinforced) -> AnchorDict:
    """``discover_extra_anchors``: a given dictionary names the saga's entities, but the target's theme
    words and name parts ("spell", "dark", "Femlihall") keep their saga meaning unless they get generic
    translations too; discovery ranks them, the top ``discover_extra_anchors`` the dictionary lacks are added."""
    from obliviate.io import atomic_write_json
    from obliviate.whp.discovery import DiscoveryConfig, discover_anchors

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
    task.extras["whp_extra_anchors"] = added
    return merged


def target_only_terms(model, reinforced, tokenizer, texts, generic_texts, anchors: AnchorDict, top: int,
                      block_size: int = 512) -> list[str]:
    """The terms among discovery's top ``top`` that the dictionary lacks and the generic text never
    uses (``generic_count`` 0): what ``suppress_target_terms`` pushes down with the anchors."""
    from obliviate.whp.discovery import DiscoveryConfig, discover_anchors

    found = discover_anchors(model, reinforced, tokenizer, texts, generic_texts,
                             DiscoveryConfig(top=top, block_size=block_size))
    return [c.term for c in found.candidates if c.term not in anchors and c.generic_count == 0]


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
    task.extras["whp_suppressed_terms"] = terms
    return terms


def task_anchors(task: UnlearnTask, config: WHPConfig, model, tokenizer, texts, reinforced) -> AnchorDict:
    if config.anchors_path:
        return load_anchors(config.anchors_path)
    world_anchors = _world_anchors(task)
    if world_anchors:
        return validate_anchors(world_anchors, where="the world's anchors.json")
    if not discovers_anchors(task, config):
        raise UserError("no anchored-term dictionary: the world has no anchors.json and auto_anchors=false; pass "
                        "--set anchors_path=FILE (see `obliviate whp anchors`)")
    from obliviate.io import atomic_write_json
    from obliviate.whp.discovery import DiscoveryConfig, discover_anchors

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
    task.extras["whp_discovered_anchors"] = found.anchors
    return found.anchors


@register
class WHP(UnlearningMethod):
    name = "whp"
    config_class = WHPConfig
    summary = "Who's Harry Potter: fine-tune on generic labels from a reinforced model and anchored-term translation"

    def unlearn(self, model, tokenizer, task: UnlearnTask):
        config: WHPConfig = self.config
        config.validate()
        seed = config.seed
        texts = target_texts(task, config)
        reinforced = None
        if config.reinforced_model_path:
            reinforced = load_reinforced(config.reinforced_model_path, model, tokenizer)
        suppress = config.anchor_unlikelihood > 0 and config.suppress_target_terms > 0
        discovery = discovers_anchors(task, config) or config.discover_extra_anchors > 0 or suppress
        if reinforced is None and discovery:
            # discovery needs the reinforced model: train it once and reuse it below
            from obliviate.whp.training import reinforce

            reinforced, _ = reinforce(model, tokenizer, texts, epochs=config.reinforce_epochs,
                                      steps=config.reinforce_steps, lr=config.reinforce_lr,
                                      batch_size=config.batch_size, block_size=config.block_size, seed=seed)
        anchors = task_anchors(task, config, model, tokenizer, texts, reinforced)
        if config.discover_extra_anchors > 0 and not discovers_anchors(task, config):
            anchors = extend_with_discovery(task, config, anchors, model, tokenizer, texts, reinforced)
        suppressed = suppression_terms(task, config, anchors, model, tokenizer, texts, reinforced) if suppress else []
        model, reinforced, report = run_whp(model, tokenizer, texts, anchors, config, reinforced=reinforced, seed=seed,
                                            callbacks=task.extras.get("callbacks", ()), suppressed_terms=suppressed)
        if config.save_reinforced_path and not config.reinforced_model_path:
            from obliviate.models.loading import save_model

            save_model(reinforced, tokenizer, config.save_reinforced_path,
                       run_config={"whp_reinforced": True, "reinforce_epochs": config.reinforce_epochs,
                                   "reinforce_steps": config.reinforce_steps, "reinforce_lr": config.reinforce_lr})
        task.extras["whp_report"] = report.to_dict()
        # read by the generic runner (obliviate.workflows.unlearn) into the saved run config
        self.steps_done = report.finetune_steps
        self.log_history = [{"whp": report.to_dict()}]
        del reinforced
        return model
