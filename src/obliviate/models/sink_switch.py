"""The switch API of a sink model: forget / restore sources, inference modes, the router.

Forgetting a source switches its sinks off at inference: no weight changes, reversible,
O(1). The state lives in the config (``forgotten``, ``inference_mode``, ...), so it is
saved with the model.

Inference modes (``set_inference_mode``, saved in the config):

- ``route`` (default): each sequence goes to its nearest training source
  (``SourceRouter``: TF-IDF-weighted embedding centroids fitted by ``fit_router``).
  If that source is forgotten and the best surviving source is at least
  ``route_shared_ratio`` as similar, the query is about knowledge other sources
  share and goes to that source; otherwise it runs every surviving sink
  (``route_forgotten="all"``, default: on tiny this matches the retrained model's
  truth ratios best), backbone-only (``"backbone"``), or always goes to the nearest
  surviving source (``"nearest"``, what ``exclude(ids)`` uses).
- ``on``: one fixed source's sinks (``on(source)`` as a context manager).
- ``backbone``: all sinks off; backbone units rescaled (:mod:`obliviate.models.sink_gates`).
- ``all``: every sink of a known, non-forgotten source, rescaled.
"""

from __future__ import annotations

import contextlib
import operator
import warnings
from typing import Iterable, Iterator, Mapping, Sequence

import torch

from obliviate.errors import UserError
from obliviate.models.sink_config import INFERENCE_MODES, ROUTE_FORGOTTEN


class SinkSwitch:
    """Mixin of :class:`~obliviate.models.sink_modeling.SinkForCausalLM`: the switch API.

    It reads and writes ``self.config`` (a SinkConfig) and reaches the decoder's router,
    gates and routing as ``self.model.router``, ``self.model.gates``, ``self.model.routing``.
    """

    @property
    def forgotten(self) -> list[int]:
        return list(self.config.forgotten)

    @property
    def known_sources(self) -> list[int] | None:
        """Sources the router was fitted on (None without a router)."""
        return self.model.router.known_sources() if self.model.router.fitted else None

    def check_sources(self, ids: Iterable[int] | int) -> list[int]:
        """Validated, sorted, de-duplicated source ids; UserError names the bad ones."""
        if isinstance(ids, torch.Tensor):
            ids = ids.reshape(-1).tolist()
        elif isinstance(ids, (int, str)):
            ids = [ids]
        checked: set[int] = set()
        for value in ids:
            try:
                if isinstance(value, bool):
                    raise TypeError
                value = operator.index(value)
            except TypeError:
                raise UserError(f"source ids must be integers, got {value!r}") from None
            if not 0 <= value < self.config.max_sources:
                raise UserError(f"unknown source id {value}: valid ids are 0..{self.config.max_sources - 1}")
            checked.add(value)
        known = self.known_sources
        if known is not None:
            unknown = sorted(checked - set(known))
            if unknown:
                raise UserError(f"unknown source id(s) {unknown[:10]}: the model's router knows "
                                f"{len(known)} sources ({min(known)}..{max(known)})")
        return sorted(checked)

    def forget(self, ids: Iterable[int] | int) -> list[int]:
        """Switch off these sources' sinks; forgetting twice is a no-op. Returns the newly forgotten ids."""
        ids = self.check_sources(ids)
        new = sorted(set(ids) - set(self.config.forgotten))
        self.config.forgotten = sorted(set(self.config.forgotten) | set(ids))
        self.model.gates.clear()
        return new

    def restore(self, ids: Iterable[int] | int) -> list[int]:
        """Switch these sources' sinks back on. Restoring a source that is not forgotten is a
        no-op with a warning (so scripts can restore idempotently). Returns the restored ids."""
        ids = self.check_sources(ids)
        restored = sorted(set(ids) & set(self.config.forgotten))
        never = sorted(set(ids) - set(restored))
        if never:
            warnings.warn(f"source(s) {never[:10]} were not forgotten: nothing to restore", stacklevel=2)
        self.config.forgotten = sorted(set(self.config.forgotten) - set(restored))
        self.model.gates.clear()
        return restored

    @property
    def inference_mode(self) -> str:
        return self.config.inference_mode

    def set_inference_mode(self, mode: str, source: int | None = None, route_forgotten: str | None = None,
                           route_shared_ratio: float | None = None) -> None:
        """``route`` | ``on`` (needs ``source``) | ``backbone`` | ``all``; saved with the config."""
        if mode not in INFERENCE_MODES:
            raise UserError(f"unknown inference mode {mode!r}; valid: {', '.join(INFERENCE_MODES)}")
        if mode == "on":
            if source is None:
                raise UserError("inference mode 'on' needs a source id")
            source = self.check_sources([source])[0]
        elif source is not None:
            raise UserError(f"inference mode {mode!r} takes no source id")
        if route_forgotten is not None and route_forgotten not in ROUTE_FORGOTTEN:
            raise UserError(f"route_forgotten must be one of {', '.join(ROUTE_FORGOTTEN)}")
        if route_shared_ratio is not None and not 0.0 <= route_shared_ratio:
            raise UserError(f"route_shared_ratio must be >= 0, got {route_shared_ratio}")
        if route_shared_ratio is not None:
            self.config.route_shared_ratio = float(route_shared_ratio)
        self.config.inference_mode = mode
        self.config.inference_source = source
        if route_forgotten is not None:
            self.config.route_forgotten = route_forgotten

    @contextlib.contextmanager
    def _temporary_mode(self) -> Iterator[None]:
        saved = (self.config.inference_mode, self.config.inference_source, self.config.route_forgotten,
                 list(self.config.forgotten))
        try:
            yield
        finally:
            (self.config.inference_mode, self.config.inference_source, self.config.route_forgotten,
             self.config.forgotten) = saved
            self.model.gates.clear()

    @contextlib.contextmanager
    def on(self, source: int) -> Iterator["SinkSwitch"]:
        """Run with one source's sinks (unless it is forgotten) inside the block."""
        with self._temporary_mode():
            self.set_inference_mode("on", source)
            yield self

    @contextlib.contextmanager
    def exclude(self, ids: Iterable[int] | int) -> Iterator["SinkSwitch"]:
        """Inside the block, ``ids`` are forgotten too and every query goes to its nearest
        surviving source."""
        with self._temporary_mode():
            self.forget(ids)
            self.set_inference_mode("route", route_forgotten="nearest")
            yield self

    @contextlib.contextmanager
    def mode(self, mode: str, source: int | None = None) -> Iterator["SinkSwitch"]:
        with self._temporary_mode():
            self.set_inference_mode(mode, source)
            yield self

    @torch.no_grad()
    def fit_router(self, texts_by_source: Mapping[int, Sequence[str]], tokenizer) -> None:
        """Fit the router on each source's training texts (after training: it reads the
        trained embedding table). Replaces any earlier router."""
        if not texts_by_source:
            raise UserError("fit_router needs texts for at least one source")
        for source in texts_by_source:
            if not 0 <= int(source) < self.config.max_sources:
                raise UserError(f"unknown source id {source}: valid ids are 0..{self.config.max_sources - 1}")
        token_ids = {
            int(source): tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []
            for source, texts in texts_by_source.items()
        }
        self.model.router.fit(self.get_input_embeddings().weight, token_ids)
        self.config.router_size = len(token_ids)
        self.model.gates.clear()

    @torch.no_grad()
    def route(self, texts: Sequence[str], tokenizer) -> list[int]:
        """The source each text is routed to in the current config (-1: backbone, -2: all sinks)."""
        encoded = tokenizer(list(texts), add_special_tokens=False, return_tensors="pt", padding=True)
        input_ids = encoded["input_ids"].to(self.device)
        embeds = self.get_input_embeddings()(input_ids)
        routes = self.model.routing.route(input_ids, embeds, encoded["attention_mask"].to(self.device))
        return [int(r) for r in routes.tolist()]


def texts_by_source(docs: Iterable[Mapping]) -> dict[int, list[str]]:
    """``[{"source_id", "text"}]`` (corpus documents) -> ``{source_id: [texts]}`` for ``fit_router``."""
    grouped: dict[int, list[str]] = {}
    for doc in docs:
        grouped.setdefault(int(doc["source_id"]), []).append(doc["text"])
    return grouped
