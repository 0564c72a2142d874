"""Experiment tracking of training runs: which tracker the HF ``Trainer`` reports to and
where its files go.

The Trainer's own integrations do the reporting (``TrainingArguments.report_to``):
TensorBoard event files (written with ``torch.utils.tensorboard`` when the
``tensorboard`` package is installed, else with ``tensorboardX``, the fallback
transformers' ``TensorBoardCallback`` has) or a Weights & Biases run (``WANDB_MODE=offline``
keeps it on disk). Their files go to a staging folder while the model trains (the model
directory is written atomically only at the end) and are then moved to ``<model>/logs``,
which the model's content fingerprint skips: tracking never changes a model's cache key.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from obliviate.errors import UserError

REPORTERS = ("none", "tensorboard", "wandb")
LOGS_DIR = "logs"   # <model out>/logs: event files, wandb runs, evaluations.jsonl
EVALUATIONS_FILE = "evaluations.jsonl"

# what each tracker needs importable, and the install line shown when it is missing
_BACKENDS = {
    # transformers' TensorBoardCallback uses torch.utils.tensorboard (needs `tensorboard`) or tensorboardX
    "tensorboard": (("tensorboard", "tensorboardX"), "pip install 'obliviate[track]' (or pip install tensorboard)"),
    "wandb": (("wandb",), "pip install wandb (WANDB_MODE=offline keeps the run on disk)"),
}


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def check_report_to(name: str) -> str:
    """``name`` if it is a tracker whose package is installed; a UserError naming the
    pip command otherwise (checked before any training)."""
    if name not in REPORTERS:
        raise UserError(f"unknown --report-to {name!r}; valid: {', '.join(REPORTERS)}")
    if name in _BACKENDS:
        modules, install = _BACKENDS[name]
        if not any(_importable(module) for module in modules):
            raise UserError(f"--report-to {name} needs {modules[0]}, which is not installed: {install}")
    return name


@dataclass
class Tracking:
    """How one training run is watched (never part of a config or a cache key).

    ``report_to``: none, tensorboard or wandb. ``log_dir``: where the tracker's files and
    the evaluations go while training. ``eval_every``: evaluate every N optimizer steps
    (and at the last one) with ``evaluate`` (model -> evaluation summary, set by the
    workflow); ``best_by`` / ``best_mode``: keep the weights of the evaluation with the
    best value of that summary key instead of the last ones.
    """

    report_to: str = "none"
    log_dir: Path | None = None
    run_name: str | None = None
    eval_every: int | None = None
    best_by: str | None = None
    best_mode: str | None = None
    evaluate: Callable[[Any], dict] | None = None

    @property
    def active(self) -> bool:
        return self.report_to != "none" or self.eval_every is not None

    def check(self) -> "Tracking":
        """UserError for a bad combination (the command line calls this before loading)."""
        from obliviate.eval.quick import check_best_by

        check_report_to(self.report_to)
        if self.eval_every is not None and (isinstance(self.eval_every, bool) or not isinstance(self.eval_every, int)
                                            or self.eval_every < 1):
            raise UserError(f"--eval-every must be at least 1, got {self.eval_every}")
        if self.best_mode is not None and self.best_by is None:
            raise UserError("--best-mode needs --best-by METRIC")
        if self.best_by is not None:
            if self.eval_every is None:
                raise UserError("--best-by needs --eval-every N (the evaluations it chooses among)")
            self.best_mode = check_best_by(self.best_by, self.best_mode)
        return self

    def training_arguments(self) -> dict[str, Any]:
        """``TrainingArguments`` keywords for the tracker (``report_to``, ``run_name``)."""
        values: dict[str, Any] = {"report_to": "none" if self.report_to == "none" else [self.report_to]}
        if self.run_name:
            values["run_name"] = self.run_name
        return values

    @contextlib.contextmanager
    def environment(self) -> Iterator[None]:
        """The variables transformers' integrations read, for the Trainer's construction
        (TensorBoard reads ``TENSORBOARD_LOGGING_DIR`` there) and its training (W&B reads
        ``WANDB_DIR`` when the run starts); restored afterwards."""
        if self.report_to == "none":
            yield
            return
        if self.log_dir is None:   # the Trainer's default is its output_dir, a scratch folder here
            raise UserError(f"--report-to {self.report_to} needs a log folder (Tracking.log_dir)")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        values = {"tensorboard": {"TENSORBOARD_LOGGING_DIR": str(self.log_dir)},
                  "wandb": {"WANDB_DIR": str(self.log_dir),
                            "WANDB_PROJECT": os.environ.get("WANDB_PROJECT", "obliviate")}}[self.report_to]
        saved = {key: os.environ.get(key) for key in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def staging_dir(out_dir: Path) -> Path:
    """Where a run's logs live until its output is saved: a hidden folder beside it, as the
    output's own atomic temporary folder is."""
    out_dir = Path(out_dir)
    return out_dir.parent / f".{out_dir.name}.logs"


def fresh_staging_dir(out_dir: Path) -> Path:
    """The staging folder, emptied of an interrupted run's leftovers."""
    staging = staging_dir(out_dir)
    shutil.rmtree(staging, ignore_errors=True)
    return staging


def place_logs(staging: Path, out_dir: Path) -> Path | None:
    """Move the staged logs into ``<out_dir>/logs`` (after the output was saved); the path,
    or None when nothing was logged."""
    staging = Path(staging)
    if not staging.is_dir():
        return None
    if not any(staging.iterdir()):
        staging.rmdir()
        return None
    target = Path(out_dir) / LOGS_DIR
    shutil.rmtree(target, ignore_errors=True)
    shutil.move(str(staging), str(target))
    return target
