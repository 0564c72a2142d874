"""Run one unlearning method end to end: world -> task, load, unlearn, save, evaluate.

``run_unlearning`` also works under ``torchrun`` / ``accelerate launch`` (every process
trains; the main process saves and evaluates), e.g.::

    torchrun --nproc_per_node 2 -m obliviate.workflows.unlearn --method npo \\
        --model RUN/models/full --world RUN/world --out RUN/models/npo
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, List, Optional

import typer

from obliviate.errors import UserError
from obliviate.methods.registry import UnlearnTask, get_method


def build_task(
    world,
    forget: str,
    out_dir: str | os.PathLike | None = None,
    seed: int = 0,
    reference_path: str | os.PathLike | None = None,
    retain_split: str = "retain",
) -> UnlearnTask:
    """What to forget (QA items and documents of the ``forget`` split's sources) and what
    to keep (those of the ``retain`` split, minus any forget source).

    A text world (``obliviate world --from-text``) may have no QA items: its forget split
    needs documents instead, and the methods train on documents (see ``text_world_defaults``).
    """
    forget_sources = world.split_sources(forget)
    forget_items = world.qa_for(forget)
    text_world = getattr(world, "manifest", {}).get("kind") == "text"
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
    )


def text_world_defaults(config, task: UnlearnTask, overrides: dict[str, Any]):
    """Train on documents where a side of the task has no QA items (a text world), unless
    the user chose ``forget_data`` / ``retain_data`` with ``--set``."""
    import dataclasses
    import logging

    changes = {}
    for field, items in (("forget_data", task.forget_items), ("retain_data", task.retain_items)):
        if hasattr(config, field) and field not in overrides and getattr(config, field) == "qa" and not items:
            changes[field] = "docs"
    if changes:
        logging.getLogger(__name__).info("no QA items: training on documents (%s)",
                                         ", ".join(f"{k}=docs" for k in changes))
        config = dataclasses.replace(config, **changes)
    return config


def _eval_path(out_dir: Path) -> Path:
    """``RUN/eval/<id>.json`` for ``RUN/models/<id>`` (DESIGN.md layout), else inside the model dir."""
    if out_dir.parent.name == "models":
        return out_dir.parent.parent / "eval" / f"{out_dir.name}.json"
    return out_dir / "eval.json"


def _evaluate(model, tokenizer, world, forget: str, model_path: Path, out_dir: Path,
              retain_model: Path | None, reference_json: Path | None, device: str | None) -> tuple[Path, dict]:
    # imported here: the evaluator is heavy and optional for --no-eval runs
    from obliviate.eval.commands import sibling_retain_model
    from obliviate.eval.evaluator import EvalConfig, evaluate, load_reference
    from obliviate.workflows.evaluate import reference_for
    from obliviate.io import atomic_write_json

    config = EvalConfig()
    if reference_json is not None:
        reference = load_reference(reference_json, world, forget)
    else:
        retain = retain_model if retain_model is not None else sibling_retain_model(Path(model_path), forget)
        # the retain model runs in the unlearned model's dtype: bf16 and fp32 scores differ
        dtype = str(next(model.parameters()).dtype).replace("torch.", "")
        reference = (reference_for(retain, world, forget, config, device=device, dtype=dtype)
                     if retain is not None else None)
    result = evaluate(model, tokenizer, world, forget, reference=reference, config=config, model_path=out_dir)
    path = _eval_path(out_dir)
    atomic_write_json(path, result)
    return path, result


def run_unlearning(
    method: str,
    model_path: str | os.PathLike,
    world_dir: str | os.PathLike,
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
) -> dict:
    """Unlearn ``forget`` from the model at ``model_path`` with ``method`` and save it to ``out_dir``.

    ``overrides`` are ``--set`` values for the method's config. With ``evaluate`` the result
    is graded against the retain model (``retain_model``, a cached ``reference_json``, or the
    ``retain`` model next to ``model_path``). ``ref_model`` replaces the frozen reference
    that NPO/IdkDPO/RMU/KL compare to (default: the starting model). ``callbacks`` are extra
    HF ``TrainerCallback``s for the method's fine-tuning (WHP and the methods built on
    ``obliviate.methods.trainer``; methods that do not train ignore them), e.g. a
    ``obliviate.whp.curve.FamiliarityCurve``. Returns a summary
    dict: ``{"method", "model", "steps", "eval", "summary"}``. ``dtype`` (auto, float32,
    bfloat16, float16) and ``device_map`` (e.g. ``auto``) are passed to ``load_model``.
    """
    from accelerate import PartialState

    from obliviate import __version__
    from obliviate.config import apply_overrides, config_to_dict
    from obliviate.models.loading import load_model_and_tokenizer, save_model
    from obliviate.world.loader import load_world

    method_class = get_method(method)
    config = apply_overrides(method_class.config_class(), overrides or {})
    world = load_world(world_dir)
    task = build_task(world, forget, out_dir=out_dir, seed=getattr(config, "seed", 0), reference_path=ref_model)
    config = text_world_defaults(config, task, overrides or {})
    task.extras["callbacks"] = list(callbacks or [])
    model, tokenizer = load_model_and_tokenizer(model_path, device=device, dtype=dtype, device_map=device_map)
    runner = method_class(config)
    model = runner.unlearn(model, tokenizer, task)

    out_dir = Path(out_dir)
    state = PartialState()
    result: dict[str, Any] = {"method": method, "model": str(out_dir), "steps": getattr(runner, "steps_done", None),
                              "eval": None, "summary": None, "main_process": state.is_main_process}
    if state.is_main_process:
        history = [entry for entry in getattr(runner, "log_history", []) if "train_runtime" not in entry]
        run_config = {
            "kind": "unlearned",
            "method": method,
            "config": config_to_dict(config),
            "base_model": str(model_path),
            "world": str(world_dir),
            "world_fingerprint": world.fingerprint,
            "forget": forget,
            "reference_model": None if ref_model is None else str(ref_model),
            "steps": result["steps"],
            "num_processes": state.num_processes,
            "distributed_type": str(state.distributed_type.value if hasattr(state.distributed_type, "value") else state.distributed_type),
            "history": history,
            "obliviate_version": __version__,
        }
        save_model(model, tokenizer, out_dir, run_config=run_config)
        if evaluate:
            retain = None if retain_model is None else Path(retain_model)
            reference = None if reference_json is None else Path(reference_json)
            path, metrics = _evaluate(model, tokenizer, world, forget, Path(model_path), out_dir, retain, reference, device)
            result["eval"], result["summary"] = str(path), metrics["summary"]
    state.wait_for_everyone()
    return result


def unlearn_command(
    method: str = typer.Option(..., "--method", help="Unlearning method (grad_ascent, grad_diff, npo, simnpo, rmu, idk_dpo, ...)."),
    model: Path = typer.Option(..., "--model", help="Model directory to unlearn from (e.g. RUN/models/full)."),
    world: Path = typer.Option(..., "--world", help="World directory holding the forget split."),
    out: Path = typer.Option(..., "--out", help="Where to save the unlearned model (written atomically)."),
    forget: Optional[str] = typer.Option(None, "--forget", help="Forget split: forget01/05/10, saga, or a user split (default: forget10, or a text world's forget split)."),
    set_: List[str] = typer.Option([], "--set", help="Method setting key=value (lr, max_steps, beta, lora=true, ...); repeatable."),
    eval_: bool = typer.Option(True, "--eval/--no-eval", help="Evaluate the unlearned model against the retain model."),
    retain_model: Optional[Path] = typer.Option(None, "--retain-model",
                                                help="Retain model (or run dir) to grade against (default: ../retain of --model)."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="Retain model's evaluation JSON to grade against."),
    ref_model: Optional[Path] = typer.Option(None, "--ref-model",
                                             help="Frozen reference for NPO/IdkDPO/RMU/KL (default: the starting model)."),
    device: Optional[str] = typer.Option(None, "--device", help="torch device for loading and evaluation (training picks its own)."),
    # Annotated options keep plain Python defaults: unlearn_command(...) called from Python works too
    dtype: Annotated[str, typer.Option("--dtype", help="Weights dtype: auto (the checkpoint's), float32, bfloat16 "
                                                       "or float16.")] = "auto",
    device_map: Annotated[Optional[str], typer.Option("--device-map", help="accelerate device map for big models, "
                                                                           "e.g. auto (instead of --device).")] = None,
) -> dict:
    """Make a model forget a split of a world with a post-hoc unlearning method."""
    from obliviate.config import parse_assignments

    if retain_model is not None and reference is not None:
        raise UserError("give either --retain-model or --reference, not both")
    from obliviate.world.loader import resolve_forget

    forget = resolve_forget(world, forget)
    result = run_unlearning(method, model, world, forget, out, parse_assignments(set_), evaluate=eval_,
                            retain_model=retain_model, reference_json=reference, ref_model=ref_model, device=device,
                            dtype=dtype, device_map=device_map)
    if result["main_process"]:
        typer.echo(f"{method}: {result['steps']} steps -> {result['model']}")
    if result["summary"] is not None:
        from obliviate.eval.commands import print_summary

        print_summary(result["summary"], f"{method} on {forget}")
        typer.echo(f"metrics -> {result['eval']}")
    return result


def main(argv: Optional[list[str]] = None) -> None:
    """Stand-alone entry point (for ``torchrun -m obliviate.workflows.unlearn``)."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(unlearn_command)
    try:
        app(args=argv, prog_name="obliviate-unlearn", standalone_mode=True)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
