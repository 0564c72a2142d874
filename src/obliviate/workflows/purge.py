"""Purge a saved sink model: its forgotten sources' sink units cut out of the weights,
written as a stock Llama (or, with ``keep_routing``, as a sink model whose purged units are
zero and whose router no longer knows them) with the run config that says what was removed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from obliviate import __version__
from obliviate.models.loading import (
    check_vocab,
    load_model,
    load_tokenizer,
    read_run_config,
    save_model,
)
from obliviate.models.sink_purge import (
    PURGE_FIELD,
    check_saved_purge,
    purge_sinks,
    purge_sinks_routed,
)


def purge_model_dir(model_dir: str | os.PathLike, out_dir: str | os.PathLike, sources: Sequence[int] | None = None,
                    forget: str | None = None, world_info: dict | None = None, keep_routing: bool = False) -> dict:
    """Purge the sink model saved in ``model_dir`` (its forgotten sources plus ``sources``)
    into ``out_dir``; returns the purge record (purged sources, units kept per layer, ...).
    ``keep_routing``: write the routed export instead (``purge_sinks_routed``: a sink model,
    which needs obliviate to load; units zeroed per layer in the record).
    Bad input (not a sink model, unknown ids, nothing to purge) fails before any weight loads."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    check_saved_purge(model_dir, sources, keep_routing=keep_routing)
    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir)
    check_vocab(model, tokenizer, where=str(model_dir))
    dense = purge_sinks_routed(model, sources) if keep_routing else purge_sinks(model, sources)
    record = getattr(dense.config, PURGE_FIELD)
    run_config = {
        "kind": "purged-routed" if keep_routing else "purged",
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
