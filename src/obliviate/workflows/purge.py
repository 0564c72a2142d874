"""Purge a saved sink model: its forgotten sources' sink units cut out of the weights,
written as a stock Llama with the run config that says what was removed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from obliviate import __version__
from obliviate.models.loading import check_vocab, load_model, load_tokenizer, read_run_config, save_model
from obliviate.models.sink_purge import PURGE_FIELD, check_saved_purge, purge_sinks


def purge_model_dir(model_dir: str | os.PathLike, out_dir: str | os.PathLike, sources: Sequence[int] | None = None,
                    forget: str | None = None, world_info: dict | None = None) -> dict:
    """Purge the sink model saved in ``model_dir`` (its forgotten sources plus ``sources``)
    into ``out_dir``; returns the purge record (purged sources, units kept per layer, ...).
    Bad input (not a sink model, unknown ids, nothing to purge) fails before any weight loads."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    check_saved_purge(model_dir, sources)
    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir)
    check_vocab(model, tokenizer, where=str(model_dir))
    dense = purge_sinks(model, sources)
    record = getattr(dense.config, PURGE_FIELD)
    run_config = {
        "kind": "purged",
        "source_model": str(model_dir),
        "forget": forget,
        **(world_info or {}),
        "requested_sources": None if sources is None else list(sources),
        **record,
        "source_run_config": read_run_config(model_dir),
        "obliviate_version": __version__,
    }
    save_model(dense, tokenizer, out_dir, run_config=run_config)
    return {"model": str(out_dir), "intermediate_size": dense.config.intermediate_size, **record}
