"""``obliviate purge``: a sink model's forgotten sources cut out of the weights, for release.

The switch (``obliviate unlearn --method switch``) only lists the forgotten sources in the
saved config; ``purge`` writes a stock Llama without their sink units
(:func:`obliviate.models.sink_purge.purge_sinks`), loadable without obliviate. With
``--keep-routing`` it writes a sink model instead, whose purged units are exactly zero and
whose router no longer knows the purged sources
(:func:`obliviate.models.sink_purge.purge_sinks_routed`): route mode keeps the surviving
sources' facts, but loading it needs obliviate. Threat model: docs/native-threat-model.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from obliviate.cli.app import OverwriteOption, app, check_model_out
from obliviate.errors import UserError


def parse_source_ids(text: str) -> list[int]:
    """``"3,5,9"`` -> ``[3, 5, 9]``; UserError on anything but comma-separated integers."""
    parts = [part for part in text.replace(" ", "").split(",") if part]
    try:
        ids = [int(part) for part in parts]
    except ValueError:
        raise UserError(f"--forget-sources expects comma-separated source ids (e.g. 3,5,9), got {text!r}") from None
    if not ids:
        raise UserError("--forget-sources is empty: give comma-separated source ids (e.g. 3,5,9)")
    return ids


@app.command("purge")
def purge_command(
    model: Path = typer.Option(..., "--model", help="Sink model directory (switched or not), with its tokenizer."),
    out: Path = typer.Option(..., "--out", help="Where to save the purged stock Llama (written atomically; replaces only an earlier model saved by obliviate)."),
    forget_sources: Optional[str] = typer.Option(None, "--forget-sources", help="Comma-separated source ids to purge besides the model's forgotten ones."),
    forget: Optional[str] = typer.Option(None, "--forget", help="Purge this split's sources too (needs --world; with --world alone: the world's default split)."),
    world: Optional[Path] = typer.Option(None, "--world", help="World directory holding the --forget split."),
    keep_routing: bool = typer.Option(False, "--keep-routing", help="Write a sink model that keeps route mode (the purged sources' sink units set to exactly 0, their router entries dropped) instead of a stock Llama; it needs obliviate to load. Without it the stock Llama runs in 'all' mode and loses most of the kept sources' unique facts."),
    overwrite: OverwriteOption = False,
) -> dict:
    """Export a sink model without the forgotten sources' sink units: a stock Llama for release
    (or, with --keep-routing, a sink model that keeps routing and needs obliviate to load)."""
    from obliviate.models.loading import load_tokenizer
    from obliviate.models.sink_purge import check_saved_purge
    from obliviate.workflows.purge import purge_model_dir

    # every cheap check first: nothing is loaded or written before the input is known good
    if forget_sources is not None and (forget is not None or world is not None):
        raise UserError("give the sources to purge either with --forget-sources or with --forget/--world, not both")
    if forget is not None and world is None:
        raise UserError("--forget names a split of a world: give the world with --world")
    sources = parse_source_ids(forget_sources) if forget_sources is not None else None
    world_info: dict = {}
    if world is not None:
        from obliviate.world.loader import load_world

        loaded_world = load_world(world)
        forget = forget if forget is not None else loaded_world.default_forget
        sources = sorted(loaded_world.split_sources(forget))
        if not sources:
            raise UserError(f"split {forget!r} of {world} has no sources to purge")
        world_info = {"world": str(loaded_world.root), "world_fingerprint": loaded_world.fingerprint}
    model, out = Path(model), Path(out)
    if out.resolve() == model.resolve():
        raise UserError(f"--out {out} is the --model directory: write the purged export elsewhere "
                        "(the switched model is what can still restore sources)")
    # not a sink model, unknown ids, nothing to purge: before any weight is loaded
    check_saved_purge(model, sources, keep_routing=keep_routing)
    load_tokenizer(model)                      # a missing tokenizer, too, before the weights
    check_model_out(out, overwrite)

    record = purge_model_dir(model, out, sources, forget=forget, world_info=world_info, keep_routing=keep_routing)
    purged = record["purged_sources"]
    if keep_routing:
        typer.echo(f"purged {len(purged)} source(s) {purged[:10]}{' ...' if len(purged) > 10 else ''}, routing kept: "
                   f"units zeroed per layer {record['units_zeroed']}, router sources "
                   f"{record['router_size_before']} -> {record['router_size']} -> {out} (a sink model: load it with obliviate)")
        return record
    typer.echo(f"purged {len(purged)} source(s) {purged[:10]}{' ...' if len(purged) > 10 else ''}: "
               f"intermediate size {record['intermediate_size_before']} -> {record['intermediate_size']}, "
               f"units kept per layer {record['units_kept']} -> {out}")
    return record
