"""Registry of unlearning methods: one module per method, registered by name."""

from __future__ import annotations

import importlib
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from obliviate.data.format import PLAIN
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
    # extra HF TrainerCallbacks for methods that fine-tune (e.g. a familiarity curve); others ignore them
    callbacks: list = field(default_factory=list)
    # tracker and evaluations during training (obliviate.tracking.Tracking); only trainer-based methods take one
    tracking: Any = None
    # how QA items become text for this model (obliviate.data.format.QAFormat: plain or chat template)
    qa_format: Any = PLAIN


@dataclass
class UnlearnResult:
    """What a method hands back to the workflow: the model and the facts the workflow,
    the run config and the benches read (no side channels on the method or the task)."""

    model: Any                                   # the unlearned model (may be the input, modified)
    steps: int | None = None                     # optimiser steps taken (0: no training, None: unknown)
    log_history: list[dict] = field(default_factory=list)   # per-step training log (losses, ...)
    seconds: float | None = None                 # wall time of ``unlearn`` (set by ``run_method``)
    report: dict[str, Any] = field(default_factory=dict)    # method-specific, JSON-safe (e.g. WHP's)
    evaluations: list[dict] = field(default_factory=list)  # evaluations during training ({"step", summary keys})
    checkpoint: dict[str, Any] | None = None                # which weights were kept (--best-by), else None


class UnlearningMethod(ABC):
    """A method: a typed config dataclass and ``unlearn(model, tokenizer, task) -> UnlearnResult``."""

    name: ClassVar[str]
    config_class: ClassVar[type]
    summary: ClassVar[str] = ""
    plain_qa_only: ClassVar[bool] = False   # cannot work in a chat template (obliviate.data.format)

    def __init__(self, config: Any | None = None):
        self.config = config if config is not None else self.config_class()

    @abstractmethod
    def unlearn(self, model, tokenizer, task: UnlearnTask) -> UnlearnResult:
        """Unlearn ``task`` from ``model``; the result holds the unlearned model (may be the
        same object, modified)."""

    @classmethod
    def check_settings(cls, config) -> None:
        """UserError for a bad setting, before any model is loaded (the command line calls
        it first; ``unlearn`` runs it again): the config's own ``validate()`` if it has one."""
        validate = getattr(config, "validate", None)
        if callable(validate):
            validate()

    @classmethod
    def check_tracking(cls, tracking) -> None:
        """UserError for tracking this method cannot do (an ``obliviate.tracking.Tracking``),
        before any model is loaded: only methods trained by an HF ``Trainer`` report to a
        tracker and evaluate during training (``TrainerMethod`` overrides this)."""
        if tracking is not None and tracking.active:
            raise UserError(f"method {cls.name} does not train with the Hugging Face Trainer: "
                            f"--report-to and --eval-every do not apply to it")

    def run(self, model, tokenizer, task: UnlearnTask) -> UnlearnResult:
        """``unlearn`` timed: what workflows call."""
        started = time.perf_counter()
        result = self.unlearn(model, tokenizer, task)
        if not isinstance(result, UnlearnResult):
            raise TypeError(f"{type(self).__name__}.unlearn must return an UnlearnResult, got {type(result).__name__}")
        result.seconds = time.perf_counter() - started
        return result


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
    # open-unlearning's other methods
    "obliviate.methods.undial",
    "obliviate.methods.altpo",
    "obliviate.methods.satimp",
    "obliviate.methods.wga",
    "obliviate.methods.ce_u",
    "obliviate.methods.pdu",
    # built to resist relearning
    "obliviate.methods.undo",
    "obliviate.methods.sam",
    "obliviate.methods.repnoise",
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
