"""Which sources a deletion request names: ids, exact names, or ``re:PATTERN`` over names.

The catalog is the world's sources (``--world``), limited to those a sink model's router
knows; a sink model served without a world knows its sources by id only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from obliviate.errors import UserError

MAX_SELECTORS = 1000


@dataclass(frozen=True)
class SourceCatalog:
    names: dict[int, str]          # source id -> name ("" when only ids are known)

    @classmethod
    def from_world(cls, world, known: list[int] | None = None) -> "SourceCatalog":
        names = {int(s["source_id"]): str(s["name"]) for s in world.sources}
        if known is not None:
            names = {i: n for i, n in names.items() if i in set(known)}
        return cls(names)

    @classmethod
    def from_ids(cls, ids: list[int]) -> "SourceCatalog":
        return cls({int(i): "" for i in ids})

    @property
    def has_names(self) -> bool:
        return any(self.names.values())

    def name_of(self, source: int) -> str:
        return self.names.get(source, "")

    def resolve(self, selectors) -> list[int]:
        """The sorted source ids the selectors name; UserError for any that names none."""
        if not isinstance(selectors, list) or not selectors:
            raise UserError("'sources' must be a non-empty list of source ids, names or 're:PATTERN' strings")
        if len(selectors) > MAX_SELECTORS:
            raise UserError(f"at most {MAX_SELECTORS} sources per request, got {len(selectors)}")
        found: set[int] = set()
        for selector in selectors:
            found |= self._one(selector)
        return sorted(found)

    def _one(self, selector) -> set[int]:
        if isinstance(selector, bool) or not isinstance(selector, (int, str)):
            raise UserError(f"a source is an id, a name or 're:PATTERN', got {selector!r}")
        if isinstance(selector, int) or selector.strip().isdigit():
            source = int(selector)
            if source not in self.names:
                raise UserError(f"unknown source id {source}")
            return {source}
        if selector.startswith("re:"):
            if not self.has_names:
                raise UserError("this server knows its sources by id only (serve it with --world): "
                                f"cannot match {selector!r}")
            try:
                pattern = re.compile(selector[3:])
            except re.error as exc:
                raise UserError(f"bad pattern in {selector!r}: {exc}") from None
            matched = {i for i, name in self.names.items() if pattern.search(name)}
            if not matched:
                raise UserError(f"{selector!r} matches no source name")
            return matched
        matched = {i for i, name in self.names.items() if name == selector}
        if not matched:
            hint = "" if self.has_names else " (this server knows its sources by id only: serve it with --world)"
            raise UserError(f"unknown source {selector!r}{hint}")
        return matched
