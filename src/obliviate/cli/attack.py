"""``obliviate attack``: try to bring forgotten knowledge back, and measure how much returns."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from obliviate.cli.app import (ChatDateOption, ChatTemplateOption, OverwriteOption, SystemPromptOption, app, chat_options,
                               check_json_out)
from obliviate.errors import UserError

# what an attack results JSON holds (``obliviate.attacks.runner.run_attacks``)
ATTACK_KEYS = ("summary", "models", "split")


def _sibling_model(model: Path, name: str) -> Path | None:
    """``RUN/models/<name>`` next to ``RUN/models/<model>``, when it holds a model."""
    from obliviate.artifacts import is_model_dir

    candidate = model.resolve().parent / name
    if candidate != model.resolve() and is_model_dir(candidate):
        return candidate
    return None


def _load(path: Path, device, what: str):
    from obliviate.models.loading import load_model_and_tokenizer

    if not path.exists():
        raise UserError(f"{what} path does not exist: {path}")
    return load_model_and_tokenizer(path, device=device)


def print_summary(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"attacks on {', '.join(results['models'])} ({results['split']['forget']}, "
                        f"{results['split']['n_items']} items)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in results["summary"].items():
        shown = "-" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))
        table.add_row(key, shown)
    Console().print(table)


@app.command("attack")
def attack_command(
    attack: str = typer.Option("all", "--attack", "--attacks",
                               help="Attack(s): relearn, icl, adversarial, gcg, quantize, format, all "
                                    "(or a comma-separated list)."),
    model: Path = typer.Option(..., help="The (unlearned) model to attack: a directory or a hub id (org/name)."),
    world: Path = typer.Option(..., help="World directory (QA items, splits, documents)."),
    forget: Optional[str] = typer.Option(None, help="Forget split whose facts the attacks try to bring back (default: forget10, or a text world's forget split)."),
    reference_model: Optional[Path] = typer.Option(
        None, help="Retain model (never saw the forget split): the baseline curves. "
                   "Default: the sibling RUN/models/retain of --model when it exists."),
    full_model: Optional[Path] = typer.Option(
        None, help="Full model (trained on everything): the level relearning must reach. "
                   "Default: the sibling RUN/models/full of --model when it exists."),
    out: Optional[Path] = typer.Option(None, help="Write the results JSON here (atomically; replaces only an earlier attack JSON)."),
    set_: List[str] = typer.Option([], "--set", help="Attack setting key=value, e.g. relearn.steps=0,5,20 "
                                                     "relearn.lr=5e-4 icl.shots=0,2 gcg.iterations=10 seed=1."),
    quant_bits: Optional[str] = typer.Option(None, help="quantize: weight bit widths, comma-separated (4, 8; default 8,4)."),
    formats: Optional[str] = typer.Option(None, help="format: forms to ask in: paraphrase, cloze, mcq, yesno, "
                                                     "language, or all (the renderable ones; default)."),
    device: Optional[str] = typer.Option(None, help="Device for the models (cpu, cuda, cuda:1); default: cpu."),
    overwrite: OverwriteOption = False,
    chat_template: ChatTemplateOption = None,
    system_prompt: SystemPromptOption = None,
    chat_date: ChatDateOption = None,
) -> dict:
    """Try to bring forgotten knowledge back: relearning, in-context relearning, adversarial
    prompts, a GCG suffix, weight quantization and format-shifted questions, with membership
    inference after each."""
    import dataclasses

    from obliviate.attacks.format_shift import parse_forms, render_forms
    from obliviate.attacks.quantize import parse_bits
    from obliviate.attacks.runner import AttackConfig, parse_attack_names, run_attacks, torch_device
    from obliviate.config import apply_overrides, parse_assignments
    from obliviate.io import atomic_write_json
    from obliviate.workflows.run_dir import RunDir
    from obliviate.world import load_world

    names = parse_attack_names(attack)
    config = apply_overrides(AttackConfig(), parse_assignments(set_))
    if isinstance(quant_bits, str):
        config = dataclasses.replace(config, quantize=dataclasses.replace(config.quantize, bits=parse_bits(quant_bits)))
    if isinstance(formats, str):
        parse_forms(formats)
        config = dataclasses.replace(config, format=dataclasses.replace(config.format, forms=formats.split(",")))
    loaded_world = load_world(world)
    forget = forget if isinstance(forget, str) else loaded_world.default_forget
    loaded_world.split_sources(forget)  # validates the split name before loading models
    if "format" in names:   # a form the world cannot render fails before any model is loaded
        from obliviate.attacks.items import select_items

        targets = select_items(loaded_world, forget, config.kinds)
        render_forms(*parse_forms(config.format.forms), targets,
                     {int(s["source_id"]): str(s["name"]) for s in loaded_world.sources}, config.format.seed)
    if out is not None:
        check_json_out(out, ATTACK_KEYS, "an attack results JSON written by obliviate", overwrite)
    torch_dev = torch_device(device)
    from obliviate.models.hub import resolve_model_path

    model = resolve_model_path(model)   # local directories, or hub ids' cached snapshots
    from obliviate.models.loading import chat_options_for, chat_template_for

    # every attack asks (and relearns) in the attacked model's QA format; the baselines too
    chat = chat_template_for(model, chat_template if chat_template is not None else config.measure.chat_template)
    given = chat_options(system_prompt, chat_date).over(dataclasses.asdict(config.measure.chat_options))
    config = dataclasses.replace(config, measure=dataclasses.replace(
        config.measure, chat_template=chat, chat_options=chat_options_for(model, given)))
    reference_model = resolve_model_path(reference_model, "reference model") if reference_model is not None else None
    full_model = resolve_model_path(full_model, "full model") if full_model is not None else None
    unlearned, tokenizer = _load(model, torch_dev, "model")
    if reference_model is None:
        retain_name = RunDir(model.resolve().parent.parent).retain_model(forget).name
        reference_model = _sibling_model(model, retain_name)
        if reference_model is not None:
            typer.echo(f"retain baseline: {reference_model}")
    if full_model is None:
        full_model = _sibling_model(model, "full")
        if full_model is not None:
            typer.echo(f"full baseline: {full_model}")
    retain = _load(reference_model, torch_dev, "reference model")[0] if reference_model is not None else None
    full = _load(full_model, torch_dev, "full model")[0] if full_model is not None else None
    for other, path in ((retain, reference_model), (full, full_model)):
        if other is not None and other.get_input_embeddings().weight.shape[0] != unlearned.get_input_embeddings().weight.shape[0]:
            raise UserError(f"{path} has another vocabulary than {model}: the models do not belong together")
    results = run_attacks(unlearned, tokenizer, loaded_world, forget, names, config, retain_model=retain, full_model=full)
    results["paths"] = {"model": str(model), "retain_model": str(reference_model) if reference_model else None,
                        "full_model": str(full_model) if full_model else None, "world": str(world)}
    if out is not None:
        atomic_write_json(out, results)
    print_summary(results)
    if out is not None:
        typer.echo(f"wrote {out}")
    return results
