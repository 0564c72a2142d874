"""``obliviate train``: the full model and the retain model (the gold standard) of a run."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from obliviate.cli.app import (ChatDateOption, ChatTemplateOption, ConfigOption, OverwriteOption, ReportToOption,
                               SystemPromptOption, app, check_preset, check_run_out, settings)
from obliviate.errors import UserError
from obliviate.launch import is_main_process


@app.command("train")
def train_command(
    world: Path = typer.Option(..., help="World directory (from `obliviate world` or `obliviate world --from-text`)."),
    run: Path = typer.Option(..., help="Run directory; models go to RUN/models/full and RUN/models/retain."),
    forget: Optional[str] = typer.Option(None, help="Forget split the retain (gold standard) model leaves out: forget01/05/10, saga or a text world's split (default: forget10, or a text world's forget split)."),
    model: Optional[Path] = typer.Option(None, help="Continue training this HF causal LM (a local directory or a hub id org/name; keeps its tokenizer) instead of training from scratch."),
    arch: str = typer.Option("dense", help="dense (Llama) or sinks (native unlearning: per-source sink neurons)."),
    preset: Optional[str] = typer.Option(None, help="Model size preset (default: the world's preset)."),
    only: Optional[str] = typer.Option(None, help="Train only 'full' or only 'retain'."),
    set_: List[str] = typer.Option([], "--set", help="Training override key=value (epochs, learning_rate, batch_size, sinks.p_gen, ...)."),
    quiet: bool = typer.Option(False, help="No progress bars."),
    config: ConfigOption = None,
    overwrite: OverwriteOption = False,
    report_to: ReportToOption = "none",
    chat_template: ChatTemplateOption = None,
    system_prompt: SystemPromptOption = None,
    chat_date: ChatDateOption = None,
) -> None:
    """Train the full model and the retain model (the model that never saw the forget split)."""
    from obliviate.config import apply_overrides
    from obliviate.tracking import check_report_to
    from obliviate.train.trainer import TrainConfig, describe
    from obliviate.workflows.train import train_run
    from obliviate.world.loader import load_world

    if preset is not None:
        check_preset(preset)
    if only not in (None, "full", "retain"):
        raise UserError(f"--only takes 'full' or 'retain', got {only!r}")
    check_report_to(report_to)
    overrides = settings(config, set_)
    if chat_template is not None:
        overrides["chat_template"] = chat_template
    for key, value in (("chat_options.system_prompt", system_prompt), ("chat_options.date_string", chat_date)):
        if value is not None:
            overrides[key] = value
    loaded = load_world(world)
    forget = forget if forget is not None else loaded.default_forget
    loaded.split_sources(forget)   # validates the split name
    # the settings are checked here, before the world is copied and the tokenizer trained
    checked = apply_overrides(TrainConfig(preset=preset or loaded.manifest.get("preset", "tiny"), arch=arch),
                              overrides).resolved()
    if model is not None:
        from obliviate.models.hub import resolve_model_path

        model = resolve_model_path(model)   # a local directory, or a hub id's cached snapshot
    if checked.chat_template:
        check_chat_template(model)
    check_run_out(run, overwrite)
    which = ("full", "retain") if only is None else (only,)
    results = train_run(world, run, forget=forget, model=model, arch=arch, preset=preset, overrides=overrides,
                        which=which, progress=not quiet, report_to=report_to)
    for role, result in results.items():
        if is_main_process():   # under `accelerate launch`, one line per model, not one per process
            typer.echo(f"{role}: {describe(result)}")


def check_chat_template(model: Path | None) -> None:
    """``--chat-template`` needs a tokenizer that has one: the starting model's (obliviate's
    own tokenizers have none)."""
    if model is None:
        raise UserError("--chat-template needs --model with a tokenizer that has a chat template "
                        "(the tokenizer obliviate trains has none)")
    from obliviate.data.format import resolve_chat_template
    from obliviate.models.loading import load_tokenizer

    resolve_chat_template(True, load_tokenizer(model))
