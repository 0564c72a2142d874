"""``obliviate attribute``: which training sources a text draws on (sink models)."""

from __future__ import annotations

from pathlib import Path

import typer

from obliviate.cli.app import OverwriteOption, app, check_json_out
from obliviate.errors import UserError

# what an attribution JSON holds (this command's --out)
ATTRIBUTION_KEYS = ("attribution",)


def _read_texts(text: list[str] | None, file: Path | None) -> list[str]:
    if bool(text) == (file is not None):
        raise UserError("give the texts either with --text (repeatable) or with --file, not both")
    if text:
        return list(text)
    if file.suffix == ".jsonl":
        from obliviate.io import read_jsonl

        return [row["text"] for row in read_jsonl(file, ("text",), "text file")]
    if not file.is_file():
        raise UserError(f"text file not found: {file}")
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{file} is not UTF-8 text") from None
    return [line for line in lines if line.strip()]


def _parse_sources(sources: str | None) -> list[int] | None:
    if sources is None:
        return None
    try:
        return [int(s) for s in sources.replace(" ", "").split(",") if s]
    except ValueError:
        raise UserError(f"--sources expects comma-separated integers, got {sources!r}") from None


def _check_sink_model_dir(model: Path) -> None:
    """A sink model is told by its config.json: refuse another model before loading its weights."""
    from obliviate.io import read_json
    from obliviate.models.sinks import SinkConfig

    config = Path(model) / "config.json"
    if config.is_file():
        data = read_json(config, "model config")
        if isinstance(data, dict) and data.get("model_type") != SinkConfig.model_type:
            raise UserError(f"attribution needs a sink model (trained with --arch sinks); {model} holds a "
                            f"{data.get('model_type')!r} model")


@app.command("attribute")
def attribute_command(
    model: Path = typer.Option(..., help="sink model directory (save_pretrained output with its tokenizer)"),
    text: list[str] = typer.Option(None, "--text", help="a text to attribute (repeatable)"),
    file: Path = typer.Option(None, help="texts to attribute: one per line, or a .jsonl file with a 'text' field"),
    top: int = typer.Option(10, min=1, help="show the N sources with the largest loss delta"),
    sources: str = typer.Option(None, help="comma-separated source ids (default: every source the router knows)"),
    reference: str = typer.Option("source", help="'source': on(s) vs backbone; 'all': all sinks vs all but s"),
    batch_size: int = typer.Option(16, min=1, help="rows per forward pass"),
    out: Path = typer.Option(None, help="write every source's attribution to this JSON file"),
    overwrite: OverwriteOption = False,
) -> list[dict]:
    """Which training sources a text draws on: loss change when each source's sinks are switched off."""
    from rich.console import Console
    from rich.table import Table

    from obliviate.attribution import REFERENCES, attribute
    from obliviate.io import atomic_write_json
    from obliviate.models.loading import load_model_and_tokenizer

    texts = _read_texts(text, file)
    source_ids = _parse_sources(sources)
    if reference not in REFERENCES:
        raise UserError(f"unknown reference {reference!r}; valid: {', '.join(REFERENCES)}")
    if out is not None:
        check_json_out(out, ATTRIBUTION_KEYS, "an attribution JSON written by obliviate", overwrite)
    if not Path(model).exists():
        raise UserError(f"model path does not exist: {model}")
    _check_sink_model_dir(model)
    loaded, tokenizer = load_model_and_tokenizer(model)
    results = attribute(loaded, tokenizer, texts, source_ids, reference=reference, batch_size=batch_size)
    if out is not None:
        atomic_write_json(out, {"model": str(model), "reference": reference, "texts": texts, "attribution": results})
    table = Table(title=f"source attribution ({len(texts)} text(s), reference={reference})")
    for column in ("rank", "source_id", "loss_delta", "loss_with", "loss_without"):
        table.add_column(column, justify="right")
    for rank, row in enumerate(results[:top], start=1):
        table.add_row(str(rank), str(row["source_id"]), f"{row['loss_delta']:+.4f}",
                      f"{row['loss_with']:.4f}", f"{row['loss_without']:.4f}")
    Console().print(table)
    return results
