"""Run one unlearning method end to end: world -> task, load, unlearn, save, evaluate.

``run_unlearning`` also works under ``torchrun`` / ``accelerate launch`` (every process
trains; the main process saves and evaluates); the command line for that is the CLI's::

    torchrun --nproc_per_node 2 -m obliviate.cli unlearn --method npo \\
        --model RUN/models/full --world RUN/world --out RUN/models/npo
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from accelerate import PartialState

from obliviate import __version__
from obliviate.config import apply_overrides, config_to_dict
from obliviate.data.format import ChatOptions, qa_format
from obliviate.errors import UserError
from obliviate.eval.config import EvalConfig
from obliviate.launch import is_main_process
from obliviate.methods.registry import UnlearnResult, UnlearnTask, get_method
from obliviate.models.loading import chat_options_for, chat_template_for, load_model_and_tokenizer, save_model, weights_dtype_name
from obliviate.tracking import EVALUATIONS_FILE, LOGS_DIR, Tracking, fresh_staging_dir, place_logs, staging_dir
from obliviate.workflows.evaluate import (
    default_eval_path,
    evaluate_model_dir,
    load_reference,
    reference_for,
    sibling_retain_model,
)
from obliviate.world.loader import World, load_world

log = logging.getLogger(__name__)


def build_task(
    world: World,
    forget: str,
    out_dir: str | os.PathLike | None = None,
    seed: int = 0,
    reference_path: str | os.PathLike | None = None,
    retain_split: str = "retain",
    callbacks: list | None = None,
    tracking: Tracking | None = None,
) -> UnlearnTask:
    """What to forget (QA items and documents of the ``forget`` split's sources) and what
    to keep (those of the ``retain`` split, minus any forget source): the split is resolved
    here, once, and methods read only the task.

    A text world (``obliviate world --from-text``) may have no QA items: its forget split
    needs documents instead, and the methods train on documents (see ``text_world_defaults``).
    """
    forget_sources = world.split_sources(forget)
    forget_items = world.qa_for(forget)
    text_world = world.manifest.get("kind") == "text"
    if text_world and not forget_items and not world.docs_for(forget_sources):
        raise UserError(f"forget split {forget!r} of world {world.root} has no documents")
    if not text_world and not forget_items:
        raise UserError(f"forget split {forget!r} of world {world.root} has no QA items")
    if retain_split in world.splits:
        retain_sources = world.split_sources(retain_split) - forget_sources
        retain_items = [q for q in world.qa_for(retain_split) if q["source_id"] in retain_sources]
    else:
        retain_sources = world.training_sources(forget) - forget_sources
        retain_items = [q for q in world.qa if q["source_id"] in retain_sources]
    return UnlearnTask(
        world=world,
        forget=forget,
        forget_sources=forget_sources,
        retain_sources=retain_sources,
        forget_items=forget_items,
        retain_items=retain_items,
        forget_docs=world.docs_for(forget_sources),
        retain_docs=world.docs_for(retain_sources),
        out_dir=None if out_dir is None else Path(out_dir),
        seed=seed,
        reference_path=None if reference_path is None else Path(reference_path),
        callbacks=list(callbacks or []),
        tracking=tracking,
    )


def text_world_defaults(config, task: UnlearnTask, overrides: dict[str, Any]):
    """Train on documents where a side of the task has no QA items (a text world), or where
    the world's QA items are for evaluation only (``"unlearn_data": "docs"`` in world.json:
    MUSE unlearns its raw text), unless the user chose ``forget_data`` / ``retain_data`` with ``--set``."""
    changes = {}
    docs_world = task.world.manifest.get("unlearn_data") == "docs"
    for field, items in (("forget_data", task.forget_items), ("retain_data", task.retain_items)):
        if (hasattr(config, field) and field not in overrides and getattr(config, field) == "qa"
                and (docs_world or not items)):
            changes[field] = "docs"
    if changes:
        log.info("%s: training on documents (%s)", "QA for evaluation only" if docs_world else "no QA items",
                 ", ".join(f"{k}=docs" for k in changes))
        config = dataclasses.replace(config, **changes)
    return config


def has_reference(world: World, forget: str, model_path: Path, retain_model: Path | None,
                  reference_json: Path | None) -> bool:
    """Whether there is a retain model (or its evaluation) to grade against."""
    return (reference_json is not None or retain_model is not None
            or sibling_retain_model(model_path, forget, world) is not None)


def _reference(model, world: World, forget: str, model_path: Path, retain_model: Path | None,
               reference_json: Path | None, device: str | None, config: EvalConfig):
    """The retain model's evaluation (a RetainReference) to grade against, or None; the
    retain model is scored in the unlearned model's QA format (``config``)."""
    if reference_json is not None:
        return load_reference(reference_json, world, forget)
    retain = retain_model if retain_model is not None else sibling_retain_model(model_path, forget, world)
    # the retain model runs in the unlearned model's dtype: bf16 and fp32 scores differ
    dtype = weights_dtype_name(model)
    return reference_for(retain, world, forget, config, device=device, dtype=dtype) if retain is not None else None


def _grade(loaded: tuple, world: World, forget: str, out_dir: Path, reference) -> tuple[Path, dict]:
    """Evaluate the just-saved model against the retain model's evaluation ``reference``."""
    path = default_eval_path(out_dir)
    return path, evaluate_model_dir(out_dir, world, forget, path, reference=reference, loaded=loaded, reuse=False)


def check_tracking(method_class, tracking: Tracking, world: World, forget: str, model_path: Path,
                   retain_model: Path | None, reference_json: Path | None) -> None:
    """UserError, before any model is loaded, for tracking the method cannot do or a
    ``best_by`` metric that needs the retain model when there is none."""
    from obliviate.eval.quick import needs_reference

    method_class.check_tracking(tracking)
    if needs_reference(tracking.best_by) and not has_reference(world, forget, model_path, retain_model,
                                                               reference_json):
        raise UserError(f"--best-by {tracking.best_by} compares with the retain model: give --retain-model or "
                        f"--reference (none found next to {model_path})")


def check_qa_format(method_class, model_path: str | os.PathLike, chat_template: bool | None, tokenizer=None) -> bool:
    """Whether the model's QA goes through its chat template (from its tokenizer and record alone:
    the CLI asks before any weight is loaded); a UserError when the method cannot work in that format."""
    chat = chat_template_for(model_path, chat_template, tokenizer)
    if chat and method_class.plain_qa_only:
        raise UserError(f"{method_class.name} works in the plain QA format only; this model's QA goes through its "
                        "chat template (--no-chat-template to unlearn it in the plain format)")
    return chat


def _watch(tracking: Tracking, method: str, out_dir: Path) -> Tracking:
    """``tracking`` with its log folder (staged beside ``out_dir`` until the model is saved)."""
    # only the main process writes logs; its rank is known before accelerate sets up the processes
    main_process = is_main_process()
    staging = fresh_staging_dir(out_dir) if main_process else staging_dir(out_dir)
    return dataclasses.replace(tracking, log_dir=staging, run_name=tracking.run_name or f"{method}-{out_dir.name}")


def _step_evaluation(tokenizer, world: World, forget: str, reference, grading: EvalConfig):
    """The evaluation run during training: the evaluator's QA sections (``eval.quick``)."""
    from obliviate.eval.quick import qa_items, quick_evaluate

    config = dataclasses.replace(grading, mia_gradnorm=False)
    items = qa_items(world, forget, config)
    return lambda model: quick_evaluate(model, tokenizer, world, forget, reference=reference, config=config,
                                        items=items)


def run_unlearning(
    method: str,
    model_path: str | os.PathLike,
    world_dir: str | os.PathLike | World,
    forget: str,
    out_dir: str | os.PathLike,
    overrides: dict[str, Any] | None = None,
    evaluate: bool = True,
    retain_model: str | os.PathLike | None = None,
    reference_json: str | os.PathLike | None = None,
    ref_model: str | os.PathLike | None = None,
    device: str | None = None,
    callbacks: list | None = None,
    dtype: str | None = None,
    device_map: str | None = None,
    tracking: Tracking | None = None,
    chat_template: bool | None = None,
    chat_options: ChatOptions = ChatOptions(),
) -> dict:
    """Unlearn ``forget`` from the model at ``model_path`` with ``method`` and save it to ``out_dir``.

    ``world_dir`` is a world directory or an already loaded ``World``. ``overrides`` are
    ``--set`` values for the method's config. With ``evaluate`` the result is graded
    against the retain model (``retain_model``, a cached ``reference_json``, or the
    ``retain`` model next to ``model_path``). ``ref_model`` replaces the frozen reference
    that NPO/IdkDPO/RMU/KL compare to (default: the starting model). ``callbacks`` are extra
    HF ``TrainerCallback``s for the method's fine-tuning (methods that do not train ignore
    them), e.g. a ``obliviate.whp.curve.FamiliarityCurve``. ``dtype`` (auto, float32,
    bfloat16, float16) and ``device_map`` (e.g. ``auto``) are passed to ``load_model``.
    ``tracking`` (``obliviate.tracking.Tracking``) reports training to TensorBoard or W&B and
    evaluates every ``eval_every`` steps, keeping the ``best_by`` weights; its files end up
    in ``out_dir/logs`` (event files, ``evaluations.jsonl``), which the model's fingerprint skips.
    ``chat_template`` (None: as the model was trained, else its tokenizer's) puts every QA
    item the method trains on, and the evaluation, in the tokenizer's chat template, rendered
    with ``chat_options`` (system prompt, date; those not set: as the model was trained).

    Returns ``{"method", "model", "steps", "seconds", "history", "report", "eval",
    "summary", "main_process", "evaluations", "checkpoint", "logs"}``: the method's
    ``UnlearnResult`` plus where things went.
    """
    method_class = get_method(method)
    config = apply_overrides(method_class.config_class(), overrides or {})
    world = world_dir if isinstance(world_dir, World) else load_world(world_dir)
    out_dir = Path(out_dir)
    tracking = tracking if tracking is not None else Tracking()
    check_tracking(method_class, tracking, world, forget, Path(model_path),
                   None if retain_model is None else Path(retain_model),
                   None if reference_json is None else Path(reference_json))
    if tracking.active:
        tracking = _watch(tracking, method, out_dir)
    task = build_task(world, forget, out_dir=out_dir, seed=getattr(config, "seed", 0), reference_path=ref_model,
                      callbacks=callbacks, tracking=tracking)
    config = text_world_defaults(config, task, overrides or {})
    model, tokenizer = load_model_and_tokenizer(model_path, device=device, dtype=dtype, device_map=device_map)
    chat = check_qa_format(method_class, model_path, chat_template, tokenizer)
    chat_options = chat_options_for(model_path, chat_options) if chat else ChatOptions()
    task.qa_format = qa_format(tokenizer, chat, chat_options)
    grading = EvalConfig(chat_template=chat, chat_options=chat_options)

    def find_reference(loaded_model):
        return _reference(loaded_model, world, forget, Path(model_path),
                          None if retain_model is None else Path(retain_model),
                          None if reference_json is None else Path(reference_json), device, grading)

    reference = None
    if tracking.eval_every is not None:
        # the evaluations during training compare with the retain model too (every process
        # evaluates); the final grade reuses it
        reference = find_reference(model)
        tracking.evaluate = _step_evaluation(tokenizer, world, forget, reference, grading)
    outcome: UnlearnResult = method_class(config).run(model, tokenizer, task)

    state = PartialState()
    # the evaluations are in logs/evaluations.jsonl, not in the history: the history is part of
    # the model's fingerprint, which tracking must not change
    history = [entry for entry in outcome.log_history
               if "train_runtime" not in entry and not any(key.startswith("eval_") for key in entry)]
    result: dict[str, Any] = {"method": method, "model": str(out_dir), "steps": outcome.steps,
                              "seconds": outcome.seconds, "history": history, "report": outcome.report,
                              "eval": None, "summary": None, "main_process": state.is_main_process,
                              "evaluations": outcome.evaluations, "checkpoint": outcome.checkpoint, "logs": None}
    if state.is_main_process:
        run_config = {
            "kind": "unlearned",
            "method": method,
            "config": config_to_dict(config),
            "base_model": str(model_path),
            "world": str(world.root),
            "world_fingerprint": world.fingerprint,
            "forget": forget,
            # the QA format it was unlearned in, which later commands keep
            "chat_template": chat, "chat_options": dataclasses.asdict(chat_options),
            "reference_model": None if ref_model is None else str(ref_model),
            "steps": outcome.steps,
            # no wall times: this file is part of the model's content fingerprint
            "report": {k: v for k, v in outcome.report.items() if "seconds" not in k},
            "num_processes": state.num_processes,
            "distributed_type": str(getattr(state.distributed_type, "value", state.distributed_type)),
            "history": history,
            "obliviate_version": __version__,
        }
        if outcome.checkpoint is not None:   # --best-by: which evaluation's weights these are
            run_config["checkpoint"] = {**outcome.checkpoint, "log": f"{LOGS_DIR}/{EVALUATIONS_FILE}"}
        save_model(outcome.model, tokenizer, out_dir, run_config=run_config)
        if tracking.log_dir is not None:
            logs = place_logs(tracking.log_dir, out_dir)
            result["logs"] = None if logs is None else str(logs)
        if evaluate:
            if tracking.eval_every is None:
                reference = find_reference(outcome.model)
            path, metrics = _grade((outcome.model, tokenizer), world, forget, out_dir, reference)
            result["eval"], result["summary"] = str(path), metrics["summary"]
    state.wait_for_everyone()
    return result

