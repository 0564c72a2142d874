"""Registry of unlearning methods: one module per method, registered by name."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from obliviate.errors import UserError


@dataclass
class UnlearnTask:
    """What to forget and what to keep, resolved from a world directory."""

    world: Any                       # obliviate.world.World
    forget: str                      # split name, e.g. "forget10" or "saga"
    forget_sources: set[int]
    retain_sources: set[int]
    forget_items: list[dict]         # QA items of the forget sources
    retain_items: list[dict]         # QA items of retained trained sources
    forget_docs: list[dict]          # corpus documents of the forget sources
    retain_docs: list[dict]          # corpus documents of retained trained sources
    out_dir: Path | None = None      # where checkpoints/artifacts may go
    seed: int = 0
    reference_path: Path | None = None   # frozen reference (defaults to the model being unlearned)
    extras: dict[str, Any] = field(default_factory=dict)


class UnlearningMethod(ABC):
    """A method: a typed config dataclass and ``unlearn(model, tokenizer, task) -> model``."""

    name: ClassVar[str]
    config_class: ClassVar[type]
    summary: ClassVar[str] = ""

    def __init__(self, config: Any | None = None):
        self.config = config if config is not None else self.config_class()

    @abstractmethod
    def unlearn(self, model, tokenizer, task: UnlearnTask):
        """Return the unlearned model (may be the same object, modified)."""


_REGISTRY: dict[str, type[UnlearningMethod]] = {}

# Modules imported lazily on first lookup so that `import obliviate` stays light.
_METHOD_MODULES = (
    "obliviate.methods.grad_ascent",
    "obliviate.methods.grad_diff",
    "obliviate.methods.npo",
    "obliviate.methods.simnpo",
    "obliviate.methods.rmu",
    "obliviate.methods.idk_dpo",
    "obliviate.methods.whp",
    "obliviate.methods.switch",
    "obliviate.methods.icul",
    "obliviate.methods.dememorize",
)


def register(cls: type[UnlearningMethod]) -> type[UnlearningMethod]:
    _REGISTRY[cls.name] = cls
    return cls


def _load_all() -> None:
    for module in _METHOD_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def available_methods() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def get_method(name: str) -> type[UnlearningMethod]:
    _load_all()
    if name not in _REGISTRY:
        raise UserError(f"unknown method {name!r}; valid methods: {', '.join(sorted(_REGISTRY)) or '(none)'}")
    return _REGISTRY[name]
