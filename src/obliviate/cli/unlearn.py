"""``obliviate unlearn`` and ``obliviate methods``.

Distributed runs (every process trains, the main process saves and evaluates) launch the
whole command line as a module::

    torchrun --nproc_per_node 2 -m obliviate.cli unlearn --method npo \\
        --model RUN/models/full --world RUN/world --out RUN/models/npo
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional, Sequence

import typer
from typer.core import TyperCommand

from obliviate.cli.app import (ChatDateOption, ChatTemplateOption, ConfigOption, OverwriteOption, ReportToOption,
                               SystemPromptOption, app, chat_options, check_model_out, run, settings)
from obliviate.errors import UserError


def method_listing() -> list[tuple[str, str]]:
    """``(name, one-line summary)`` of every registered method (imports the method modules)."""
    from obliviate.methods.registry import available_methods, get_method

    return [(name, get_method(name).summary) for name in available_methods()]


class _WithMethodList(TyperCommand):
    """Help that ends with every method and its summary, built only when help is shown
    (listing the methods imports them all, which ``obliviate --help`` need not pay for)."""

    def format_help(self, ctx, formatter):
        from rich.markup import escape

        self.epilog = "Methods (also listed by `obliviate methods`):\n\n" + "\n".join(
            f"  {name}: {escape(summary)}" for name, summary in method_listing())
        return super().format_help(ctx, formatter)


@app.command("unlearn", cls=_WithMethodList)
def unlearn_command(
    method: str = typer.Option(..., "--method", help="Unlearning method (every one is listed below, and by `obliviate methods`)."),
    model: Path = typer.Option(..., "--model", help="Model to unlearn from: a directory (e.g. RUN/models/full) or a hub id (org/name)."),
    world: Path = typer.Option(..., "--world", help="World directory holding the forget split."),
    out: Path = typer.Option(..., "--out", help="Where to save the unlearned model (written atomically; replaces only an earlier model saved by obliviate)."),
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
    config: ConfigOption = None,
    overwrite: OverwriteOption = False,
    report_to: ReportToOption = "none",
    eval_every: Annotated[Optional[int], typer.Option(
        "--eval-every", help="Evaluate every N steps and at the last one (the evaluation's QA metrics; forget "
                             "quality when a retain model is found), logged to OUT/logs/evaluations.jsonl and the "
                             "tracker. (--set eval_every is the stop_truth_ratio check period.)")] = None,
    best_by: Annotated[Optional[str], typer.Option(
        "--best-by", help="Save the weights of the evaluation with the best value of this summary metric "
                          "(e.g. forget_quality, model_utility, forget_unique_accuracy) instead of the last; "
                          "needs --eval-every.")] = None,
    best_mode: Annotated[Optional[str], typer.Option(
        "--best-mode", help="min or max (default: the metric's better direction, e.g. max for forget_quality, "
                            "min for forget_Q_A_Prob).")] = None,
    chat_template: ChatTemplateOption = None,
    system_prompt: SystemPromptOption = None,
    chat_date: ChatDateOption = None,
) -> dict:
    """Make a model forget a split of a world with a post-hoc unlearning method."""
    from obliviate.cli.evaluate import print_summary
    from obliviate.config import apply_overrides
    from obliviate.methods.registry import get_method
    from obliviate.models.hub import resolve_model_path
    from obliviate.models.loading import resolve_dtype
    from obliviate.tracking import Tracking
    from obliviate.workflows.unlearn import check_qa_format, check_tracking, run_unlearning
    from obliviate.world.loader import load_world

    # every cheap check first: nothing is loaded or written before the input is known good
    if retain_model is not None and reference is not None:
        raise UserError("give either --retain-model or --reference, not both")
    if device is not None and device_map is not None:
        raise UserError("give either --device or --device-map, not both")
    from obliviate.models.loading import check_device, check_device_map

    check_device(device)
    check_device_map(device_map)
    resolve_dtype(dtype)
    method_class = get_method(method)
    overrides = settings(config, set_)
    method_class.check_settings(apply_overrides(method_class.config_class(), overrides))
    tracking = Tracking(report_to=report_to, eval_every=eval_every, best_by=best_by, best_mode=best_mode)
    method_class.check_tracking(tracking)
    loaded = load_world(world)
    forget = forget if forget is not None else loaded.default_forget
    loaded.split_sources(forget)
    model = resolve_model_path(model)   # a local directory, or a hub id's cached snapshot
    if ref_model is not None:
        ref_model = resolve_model_path(ref_model, "ref model")
    for option, path in (("--retain-model", retain_model), ("--reference", reference)):
        if path is not None and not Path(path).exists():
            raise UserError(f"{option.lstrip('-').replace('-', ' ')} path does not exist: {path}")
    # a --best-by metric that needs the retain model, when there is none
    check_tracking(method_class, tracking, loaded, forget, Path(model), retain_model, reference)
    check_qa_format(method_class, model, chat_template)
    check_model_out(out, overwrite)
    result = run_unlearning(method, model, loaded, forget, out, overrides, evaluate=eval_,
                            retain_model=retain_model, reference_json=reference, ref_model=ref_model, device=device,
                            dtype=dtype, device_map=device_map, tracking=tracking, chat_template=chat_template,
                            chat_options=chat_options(system_prompt, chat_date))
    if result["main_process"]:
        typer.echo(f"{method}: {result['steps']} steps{_kept(result['checkpoint'])} -> {result['model']}")
        if result["logs"] is not None:
            typer.echo(f"logs -> {result['logs']}")
    if result["summary"] is not None:
        print_summary(result["summary"], f"{method} on {forget}")
        typer.echo(f"metrics -> {result['eval']}")
    return result


def _kept(checkpoint: dict | None) -> str:
    """What the output line says about the kept weights of a --best-by run."""
    if checkpoint is None:
        return ""
    if checkpoint["kept"] == "last":
        return f", kept the last step (no evaluation had a {checkpoint['best_by']} value)"
    return (f", kept step {checkpoint['step']} (best {checkpoint['best_by']} = {checkpoint['value']:.4g} "
            f"({checkpoint['mode']}) of {checkpoint['evaluations']} evaluations)")


@app.command("methods")
def methods_command() -> list[tuple[str, str]]:
    """List every unlearning method with its one-line summary."""
    listing = method_listing()
    width = max(len(name) for name, _ in listing)
    for name, summary in listing:
        typer.echo(f"{name:<{width}}  {summary}")
    return listing


def main(argv: Optional[Sequence[str]] = None) -> None:
    """``obliviate unlearn`` as a function of its own (argv without the ``unlearn`` word)."""
    standalone = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                             context_settings={"help_option_names": ["-h", "--help"]})
    standalone.command(cls=_WithMethodList)(unlearn_command)
    run(standalone, argv, "obliviate-unlearn")
