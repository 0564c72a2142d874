"""Data attribution for sink models: how much each source's sinks lower the loss on a text.

``loss_delta`` of source ``s`` = mean token NLL of the texts with ``s``'s sinks off
minus with them on, so a positive value means the source helps predict the texts.
Two reference states:

- ``reference="source"`` (default): on = ``on(s)`` (backbone + s's sinks), off =
  backbone only. Each source is measured on its own, so the figure does not depend
  on which other sources exist. All (text, source) pairs run in batches.
- ``reference="all"``: on = ``all`` mode (every non-forgotten sink), off = the same
  with ``s`` also forgotten (leave-one-out).

Forgotten sources have their sinks off in both states: their delta is 0.
"""

from __future__ import annotations

from typing import Sequence

import torch

from obliviate.errors import UserError
from obliviate.models.sinks import BACKBONE, is_sink_model

REFERENCES = ("source", "all")


def _encode(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    encoded = tokenizer(list(texts), add_special_tokens=True)["input_ids"]
    for text, ids in zip(texts, encoded):
        if len(ids) < 2:
            raise UserError(f"text too short to score (needs at least 2 tokens): {text!r}")
    return encoded


@torch.no_grad()
def _nll(model, rows: list[list[int]], row_sources: list[int] | None, pad_id: int, batch_size: int):
    """Summed NLL and predicted-token count per row (right-padded batches)."""
    sums, counts = [], []
    device = model.device
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        length = max(len(r) for r in chunk)
        ids = torch.tensor([r + [pad_id] * (length - len(r)) for r in chunk], device=device)
        mask = torch.tensor([[1] * len(r) + [0] * (length - len(r)) for r in chunk], device=device)
        kwargs = {}
        if row_sources is not None:
            kwargs["source_ids"] = torch.tensor(row_sources[start:start + batch_size], device=device)
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False, **kwargs).logits.float()
        token_nll = torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none") * mask[:, 1:]
        sums.extend(token_nll.sum(1).tolist())
        counts.extend(mask[:, 1:].sum(1).tolist())
    return sums, counts


def attribute(model, tokenizer, texts: Sequence[str], sources: Sequence[int] | None = None,
              reference: str = "source", batch_size: int = 16) -> list[dict]:
    """Per-source ``{"source_id", "loss_delta", "loss_with", "loss_without"}``, largest delta first.

    Losses are mean NLL per predicted token over all ``texts``; ``sources`` defaults to
    the sources the model's router knows.
    """
    if not is_sink_model(model):
        raise UserError(f"attribution needs a sink model (trained with --arch sinks); got {type(model).__name__}")
    if reference not in REFERENCES:
        raise UserError(f"unknown reference {reference!r}; valid: {', '.join(REFERENCES)}")
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise UserError("no text to attribute")
    if sources is None:
        sources = model.known_sources
        if sources is None:
            raise UserError("the model has no fitted router: pass the source ids to attribute")
    sources = model.check_sources(sources)
    if not sources:
        raise UserError("no sources to attribute")
    encoded = _encode(tokenizer, texts)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    was_training = model.training
    model.eval()
    try:
        if reference == "source":
            states = [BACKBONE, *sources]
            rows = [ids for _ in states for ids in encoded]
            row_sources = [state for state in states for _ in encoded]
            sums, counts = _nll(model, rows, row_sources, pad_id, batch_size)
            n = len(encoded)
            per_state = [sum(sums[i * n:(i + 1) * n]) / sum(counts[i * n:(i + 1) * n]) for i in range(len(states))]
            baseline = per_state[0]
            results = [{"source_id": s, "loss_with": loss, "loss_without": baseline}
                       for s, loss in zip(sources, per_state[1:])]
        else:
            with model.mode("all"):
                sums, counts = _nll(model, encoded, None, pad_id, batch_size)
            baseline = sum(sums) / sum(counts)
            results = []
            for source in sources:
                with model.mode("all"):
                    model.forget([source])
                    sums, counts = _nll(model, encoded, None, pad_id, batch_size)
                results.append({"source_id": source, "loss_with": baseline, "loss_without": sum(sums) / sum(counts)})
    finally:
        model.train(was_training)
    for row in results:
        row["loss_delta"] = row["loss_without"] - row["loss_with"]
    return sorted(results, key=lambda r: (-r["loss_delta"], r["source_id"]))


__all__ = ["attribute", "REFERENCES"]
