"""``obliviate whp ...``: Who's Harry Potter tools.

- ``anchors``:  obliviate whp anchors --model PATH (--world DIR | --text FILE...) --out anchors.json
                [--reinforced PATH] [--top N]
- ``generate``: obliviate whp generate --model PATH --reinforced PATH --prompt TEXT [--alpha A]
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from obliviate.cli.app import OverwriteOption, app, check_json_out, check_model_out
from obliviate.errors import UserError

whp_app = typer.Typer(help="Who's Harry Potter tools: anchored-term dictionaries and inference-only generation.",
                      no_args_is_help=True)
app.add_typer(whp_app, name="whp")


def _is_anchor_dictionary(data) -> bool:
    """An anchored-term dictionary ``{term: [alternatives]}`` (what ``whp anchors --out`` writes)."""
    return isinstance(data, dict) and all(isinstance(v, list) for v in data.values())


def _target_and_generic(world: Optional[Path], text: Optional[list[Path]], generic: Optional[list[Path]],
                        forget: str) -> tuple[list[str], list[str]]:
    from obliviate.whp.text_files import read_text_files

    if (world is None) == (not text):
        raise UserError("give exactly one of --world DIR or --text FILE (the target text)")
    generic_texts = read_text_files(generic) if generic else []
    if text:
        return read_text_files(text), generic_texts
    from obliviate.world.loader import load_world

    loaded = load_world(world)
    forget_sources = loaded.split_sources(forget)
    targets = [d["text"] for d in loaded.docs_for(forget_sources) if d["text"].strip()]
    if not targets:
        raise UserError(f"the unlearning target is empty: split {forget!r} of {world} has no documents")
    if not generic_texts:  # the rest of what the model was trained on stands for generic text
        generic_texts = [d["text"] for d in loaded.docs_for(loaded.trained_sources() - forget_sources)]
    return targets, generic_texts


@whp_app.command("anchors")
def anchors_command(
    model: Path = typer.Option(..., help="Baseline model directory (HF save_pretrained)."),
    out: Path = typer.Option(..., help="Where to write the proposed {term: [alternatives]} JSON."),
    world: Optional[Path] = typer.Option(None, help="World directory: the target is its --forget split."),
    text: Optional[list[Path]] = typer.Option(None, help="Target text file(s), instead of --world."),
    generic: Optional[list[Path]] = typer.Option(None, help="Generic text file(s) for the specificity ratio "
                                                            "(default with --world: the other trained sources)."),
    forget: str = typer.Option("saga", help="Split of the world that holds the target."),
    reinforced: Optional[Path] = typer.Option(None, help="A reinforced model to reuse (else one is trained)."),
    save_reinforced: Optional[Path] = typer.Option(None, help="Keep the reinforced model trained here."),
    top: int = typer.Option(30, min=1, help="Number of terms to propose."),
    alternatives: int = typer.Option(3, min=1, help="Generic alternatives per term."),
    min_count: int = typer.Option(3, min=1, help="Occurrences a term needs in the target."),
    reinforce_epochs: float = typer.Option(4.0, help="Epochs of reinforcement when no --reinforced is given."),
    block_size: int = typer.Option(512, min=2, help="Tokens per scored block."),
    seed: int = typer.Option(0, help="Seed of the reinforcement run."),
    overwrite: OverwriteOption = False,
) -> Path:
    """Propose an anchored-term dictionary for WHP, write it as editable JSON and print it."""
    from rich.console import Console
    from rich.table import Table

    from obliviate.io import atomic_write_json
    from obliviate.models.loading import load_model_and_tokenizer, save_model
    from obliviate.whp.discovery import DiscoveryConfig, discover_anchors
    from obliviate.whp.reinforced import load_reinforced
    from obliviate.whp.training import reinforce

    check_json_out(out, _is_anchor_dictionary, "an anchored-term dictionary", overwrite)
    if save_reinforced is not None:
        if reinforced is not None:
            raise UserError("--save-reinforced keeps a reinforced model trained here: it does not go with --reinforced")
        check_model_out(save_reinforced, overwrite, option="--save-reinforced")
    targets, generic_texts = _target_and_generic(world, text, generic, forget)
    for option, path in (("--model", model), ("--reinforced", reinforced)):
        if path is not None and not path.exists():
            raise UserError(f"{option.lstrip('-')} model path does not exist: {path}")
    base, tokenizer = load_model_and_tokenizer(model)
    if reinforced is not None:
        reinforced_model = load_reinforced(reinforced, base, tokenizer)
    else:
        reinforced_model, _ = reinforce(base, tokenizer, targets, epochs=reinforce_epochs, block_size=block_size,
                                        seed=seed)
        if save_reinforced is not None:
            save_model(reinforced_model, tokenizer, save_reinforced, run_config={"whp_reinforced": True,
                                                                               "reinforce_epochs": reinforce_epochs})
    config = DiscoveryConfig(top=top, n_alternatives=alternatives, min_count=min_count, block_size=block_size)
    result = discover_anchors(base, reinforced_model, tokenizer, targets, generic_texts, config)
    if not result.anchors:
        raise UserError("no anchored term found: no n-gram is both more likely under the reinforced model and "
                        "specific to the target (try --min-count 2 or more reinforcement)")
    atomic_write_json(out, result.anchors)

    table = Table(title=f"anchored terms -> {out}")
    for column in ("term", "alternatives", "count", "generic", "gain", "specificity", "score"):
        table.add_column(column)
    for c in result.candidates:
        table.add_row(c.term, ", ".join(c.alternatives), str(c.count), str(c.generic_count), f"{c.gain:.2f}",
                      f"{c.specificity:.2f}", f"{c.score:.2f}")
    Console().print(table)
    return out


@whp_app.command("generate")
def generate_command(
    model: Path = typer.Option(..., help="Baseline model directory."),
    reinforced: Path = typer.Option(..., help="Reinforced model directory (same tokenizer)."),
    prompt: list[str] = typer.Option(..., help="Prompt(s) to complete."),
    alpha: float = typer.Option(5.0, min=0.0, help="Strength of the generic-logit correction."),
    max_new_tokens: int = typer.Option(40, min=1, help="Tokens to generate per prompt."),
) -> list[str]:
    """Inference-only WHP: greedy completions with v_base - alpha*relu(v_reinforced - v_base)."""
    from rich.console import Console

    from obliviate.models.loading import load_model_and_tokenizer
    from obliviate.whp.inference import WHPGenerator
    from obliviate.whp.reinforced import load_reinforced

    for option, path in (("--model", model), ("--reinforced", reinforced)):
        if not path.exists():
            raise UserError(f"{option.lstrip('-')} model path does not exist: {path}")
    base, tokenizer = load_model_and_tokenizer(model)
    generator = WHPGenerator(base, load_reinforced(reinforced, base, tokenizer), tokenizer, alpha)
    completions = generator.generate(prompt, max_new_tokens=max_new_tokens)
    console = Console()
    for p, c in zip(prompt, completions):
        console.print(f"[bold]{p}[/bold]{c}")
    return completions
