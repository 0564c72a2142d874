"""``obliviate eval`` (a model's metrics JSON) and ``obliviate report`` (a run's report)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from obliviate.cli.app import (ChatDateOption, ChatTemplateOption, OverwriteOption, SystemPromptOption, app, chat_options,
                               check_json_out, is_run_dir)
from obliviate.errors import UserError
from obliviate.launch import is_main_process

TABLE_KEYS = (
    "forget_quality", "model_utility", "forget_truth_ratio", "forget_Q_A_Prob", "forget_Q_A_ROUGE",
    "retain_prob", "retain_rouge", "mia_loss", "privleak", "exact_memorization",
    "verbmem_f", "familiarity_completion", "forget_unique_accuracy", "forget_shared_accuracy",
    "retain_unique_accuracy", "forget_perplexity", "holdout_perplexity",
)
# what an evaluation JSON holds (``obliviate.eval.evaluator.evaluate``): eval --out replaces only such a file
EVAL_KEYS = ("summary", "per_item", "config")


def print_summary(summary: dict, title: str, extra_rows: list[tuple[str, str]] | None = None) -> None:
    """The headline metrics as a table; ``extra_rows`` (name, value text) go below, e.g. lm-eval tasks."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in TABLE_KEYS:
        value = summary.get(key)
        table.add_row(key, "-" if value is None else f"{value:.4g}")
    for name, text in extra_rows or ():
        table.add_row(name, text)
    Console().print(table)


@app.command("eval")
def eval_command(
    model: Path = typer.Option(..., "--model", help="Model to evaluate: a directory (save_pretrained output) or a hub id (org/name)."),
    world: Path = typer.Option(..., "--world", help="World directory (embedded or user-built)."),
    out: Path = typer.Option(..., "--out", help="Where to write the metrics JSON (replaces only an earlier metrics JSON)."),
    forget: Optional[str] = typer.Option(None, "--forget", help="Forget split name (default: forget10, or a text world's forget split)."),
    reference: Optional[Path] = typer.Option(None, "--reference",
                                             help="Retain model's evaluation JSON (for forget quality, PrivLeak)."),
    retain_model: Optional[Path] = typer.Option(None, "--retain-model",
                                                help="Retain model (or run dir) to evaluate and cache as reference."),
    batch_size: int = typer.Option(32, "--batch-size", help="Items per forward / generate batch."),
    device: Optional[str] = typer.Option(None, "--device", help="torch device, e.g. cpu or cuda (default: cpu)."),
    # Annotated options keep plain Python defaults: eval_command(...) called from Python works too
    dtype: Annotated[str, typer.Option("--dtype", help="Weights dtype: auto (the checkpoint's), float32, bfloat16 "
                                                       "or float16.")] = "auto",
    device_map: Annotated[Optional[str], typer.Option("--device-map", help="accelerate device map for big models, "
                                                                           "e.g. auto (instead of --device).")] = None,
    lm_eval: Annotated[Optional[str], typer.Option("--lm-eval", help="Also run lm-evaluation-harness tasks, e.g. "
                                                                     "arc_easy,piqa,boolq,hellaswag.")] = None,
    lm_eval_include: Annotated[Optional[Path], typer.Option("--lm-eval-include", help="Directory of your own lm-eval "
                                                                                      "task configs (YAML).")] = None,
    lm_eval_fewshot: Annotated[Optional[int], typer.Option("--lm-eval-fewshot", help="Few-shot examples for the "
                                                           "lm-eval tasks (default: each task's own).")] = None,
    lm_eval_limit: Annotated[Optional[float], typer.Option("--lm-eval-limit", help="Examples per lm-eval task "
                                                           "(< 1: a share), for quick checks only.")] = None,
    overwrite: OverwriteOption = False,
    chat_template: ChatTemplateOption = None,
    system_prompt: SystemPromptOption = None,
    chat_date: ChatDateOption = None,
) -> Path:
    """Evaluate a model on a world and write the metrics JSON (plus lm-eval tasks with --lm-eval)."""
    from obliviate.eval.evaluator import EvalConfig, RetainReference
    from obliviate.io import atomic_write_json
    from obliviate.models.loading import (
        chat_options_for, chat_template_for, check_device, check_device_map, load_model_and_tokenizer, resolve_dtype,
    )
    from obliviate.workflows.evaluate import evaluate_model_dir, load_reference, reference_for, sibling_retain_model
    from obliviate.world.loader import load_world

    config = EvalConfig(batch_size=batch_size)
    config.validate()
    resolve_dtype(dtype)
    if device is not None and device_map is not None:
        raise UserError("give either --device or --device-map, not both")
    check_device(device)
    check_device_map(device_map)
    if reference is not None and retain_model is not None:
        raise UserError("give either --reference or --retain-model, not both")
    if lm_eval is None and (lm_eval_include is not None or lm_eval_fewshot is not None or lm_eval_limit is not None):
        raise UserError("--lm-eval-include/--lm-eval-fewshot/--lm-eval-limit need --lm-eval TASKS")
    loaded_world = load_world(world)
    forget = forget if isinstance(forget, str) else loaded_world.default_forget
    if forget not in loaded_world.splits:
        raise UserError(f"unknown forget split {forget!r}; this world has: {', '.join(sorted(loaded_world.splits))}")
    from obliviate.models.hub import resolve_model_path

    model = resolve_model_path(model)   # a local directory, or a hub id's cached snapshot
    # the QA format, decided from the tokenizer and the model's record before any weight loads;
    # the retain model is scored in the same one
    config = replace(config, chat_template=chat_template_for(model, chat_template),
                     chat_options=chat_options_for(model, chat_options(system_prompt, chat_date)))
    check_json_out(out, EVAL_KEYS, "an evaluation JSON written by obliviate", overwrite)
    if not is_main_process():
        # under `accelerate launch` / torchrun the main process evaluates alone (the evaluation is
        # not sharded; --device-map auto spreads a big model instead); the others only validated
        return out
    lm_eval_config = lm_eval_tasks = None
    if lm_eval is not None:
        # before the (long) world evaluation: a missing package, task name or data set fails fast
        from obliviate.eval.lm_eval_bridge import LmEvalConfig, parse_tasks, prepare_tasks

        lm_eval_config = LmEvalConfig(tasks=parse_tasks(lm_eval), include_path=lm_eval_include,
                                      batch_size=batch_size, num_fewshot=lm_eval_fewshot, limit=lm_eval_limit)
        lm_eval_tasks = prepare_tasks(lm_eval_config)
    ref: RetainReference | None = None
    if reference is not None:
        ref = load_reference(reference, loaded_world, forget)
    else:
        retain = retain_model if retain_model is not None else sibling_retain_model(Path(model), forget, loaded_world)
        if retain is not None:
            ref = reference_for(retain, loaded_world, forget, config, device=device, dtype=dtype, device_map=device_map)
    loaded = load_model_and_tokenizer(model, device=device, dtype=dtype, device_map=device_map)
    result = evaluate_model_dir(model, loaded_world, forget, out, reference=ref, config=config, dtype=dtype,
                                device_map=device_map, loaded=loaded, reuse=False)
    extra_rows: list[tuple[str, str]] = []
    if lm_eval_config is not None:
        from obliviate.eval.lm_eval_bridge import run_lm_eval, table_rows

        result["lm_eval"] = run_lm_eval(*loaded, lm_eval_config, lm_eval_tasks)
        extra_rows = table_rows(result["lm_eval"])
        atomic_write_json(out, result)
    print_summary(result["summary"], f"{model} on {forget}", extra_rows)
    return out


@app.command("report")
def report_command(
    run: Path = typer.Option(..., "--run", help="Run directory holding eval/*.json."),
) -> Path:
    """Render RUN/report.md and RUN/plots/*.png from the run's evaluation JSONs."""
    from obliviate.eval.report import render_report

    run = Path(run)
    if not run.is_dir():
        raise UserError(f"run directory does not exist: {run}" if not run.exists()
                        else f"--run {run} exists and is not a directory")
    if not is_run_dir(run):
        raise UserError(f"--run {run} is not an obliviate run directory (no eval/*.json, models or world of a run); "
                        "refusing to write report.md and plots/ into it")
    path = render_report(run)
    typer.echo(str(path))
    return path
