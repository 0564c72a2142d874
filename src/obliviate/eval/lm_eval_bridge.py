"""General benchmarks through lm-evaluation-harness on an already-loaded model.

``obliviate eval --lm-eval arc_easy,piqa,...`` wraps the model and tokenizer it has
loaded in lm-eval's ``HFLM`` (nothing is downloaded or loaded twice) and runs
``lm_eval.simple_evaluate``; the results go under ``"lm_eval"`` in the eval JSON. User
task directories (YAML configs over local data files) come in through ``include_path``,
lm-eval's ``TaskManager``: with only local tasks requested, lm-eval's own task index
(thousands of YAML files, ~10 s to scan) is not built.

lm-eval is an optional dependency: ``pip install 'obliviate[lm-eval]'``.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from obliviate.errors import UserError

INSTALL_HINT = "pip install 'obliviate[lm-eval]'"
# metrics shown in the printed table, first found wins (the WHP paper's tables report acc/acc_norm)
DISPLAY_METRICS = ("acc_norm", "acc", "exact_match", "f1", "mcc", "word_perplexity", "perplexity")


@dataclass
class LmEvalConfig:
    tasks: tuple[str, ...]
    include_path: Path | None = None   # user task directory (YAML task configs)
    batch_size: int = 32
    num_fewshot: int | None = None     # None: each task's own default
    limit: float | None = None         # examples per task (< 1: a share); None: all. For quick checks only
    bootstrap_iters: int = 100000      # lm-eval's default; only metrics without a closed-form stderr use it
    seed: int = 0


def parse_tasks(text: str) -> tuple[str, ...]:
    """``"arc_easy, piqa"`` -> ``("arc_easy", "piqa")``; UserError if empty."""
    tasks = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if not tasks:
        raise UserError("--lm-eval needs at least one task name, e.g. --lm-eval arc_easy,piqa")
    return tasks


def require_lm_eval():
    """The ``lm_eval`` module, or a UserError telling how to install it."""
    try:
        import lm_eval  # optional dependency: imported only when --lm-eval is used
    except ImportError:
        raise UserError(f"--lm-eval needs lm-evaluation-harness, which is not installed: {INSTALL_HINT}") from None
    return lm_eval


def _is_task_file(name: str) -> bool:
    return name.endswith((".yaml", ".yml"))


def _is_pattern(name: str) -> bool:
    return any(ch in name for ch in "*?[")


def _known(name: str, names: Sequence[str]) -> bool:
    return bool(fnmatch.filter(names, name)) if _is_pattern(name) else name in names


def expand_tasks(tasks: Sequence[str], manager) -> list[str]:
    """Glob patterns (``mmlu_*``) replaced by the task names they match, order kept."""
    expanded: list[str] = []
    for name in tasks:
        expanded += sorted(fnmatch.filter(manager.all_tasks, name)) if _is_pattern(name) else [name]
    return list(dict.fromkeys(expanded))


def task_manager(config: LmEvalConfig):
    """A ``TaskManager`` that knows every requested task; UserError naming the unknown ones.

    Only the user's directory is indexed when it holds every requested task; lm-eval's
    built-in tasks are indexed otherwise.
    """
    require_lm_eval()
    from lm_eval.tasks import TaskManager  # optional dependency, checked just above

    include = None
    if config.include_path is not None:
        include = Path(config.include_path)
        if not include.is_dir():
            raise UserError(f"--lm-eval-include {include} is not a directory of lm-eval task configs")
    for name in config.tasks:
        if _is_task_file(name) and not Path(name).is_file():
            raise UserError(f"lm-eval task file not found: {name}")
    wanted = [name for name in config.tasks if not _is_task_file(name)]
    manager = None
    if include is not None:
        manager = TaskManager(include_path=str(include), include_defaults=False)
        if not all(_known(name, manager.all_tasks) for name in wanted):
            manager = None
    if manager is None:
        manager = TaskManager(include_path=None if include is None else str(include))
    unknown = [name for name in wanted if not _known(name, manager.all_tasks)]
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, manager.all_tasks, n=3)
            hints.append(f"{name!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        where = f" nor in {include}" if include is not None else ""
        raise UserError(f"unknown lm-eval task(s) {', '.join(hints)}: not among lm-eval's tasks{where}; "
                        "`lm-eval ls tasks` lists them, --lm-eval-include DIR adds your own")
    return manager


def _plain(value: Any) -> Any:
    """lm-eval results as plain JSON (numpy scalars, NaN, tuples and odd objects made safe)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return _plain(value.item())
    return str(value)


def wrap_model(model, tokenizer, batch_size: int):
    """The loaded model and tokenizer as an lm-eval ``HFLM`` (no second load, no download)."""
    require_lm_eval()
    from lm_eval.models.huggingface import HFLM  # optional dependency, checked just above

    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)


def _data_error(exc: BaseException, tasks: Sequence[str]) -> UserError | None:
    """A UserError for a task whose data set cannot be had (offline, missing file), else None."""
    module = type(exc).__module__ or ""
    if not isinstance(exc, (FileNotFoundError, ConnectionError)) and \
            not module.startswith(("datasets", "huggingface_hub", "requests", "httpx")):
        return None
    first_line = str(exc).splitlines()[0] if str(exc) else ""
    return UserError(f"lm-eval could not load the data of task(s) {', '.join(tasks)}: {type(exc).__name__}: "
                     f"{first_line} (built-in tasks download their data set from the Hugging Face Hub; "
                     "offline, only tasks over local files work)")


class PreparedTasks:
    """A ``TaskManager`` whose requested tasks are already built (data sets loaded), so that a
    missing data set fails before any model runs; ``simple_evaluate`` gets them back from ``load``."""

    def __init__(self, manager, tasks: Sequence[str]):
        self._manager = manager
        self.names = expand_tasks(tasks, manager)
        try:
            self._loaded = manager.load(list(self.names))
        except Exception as exc:
            error = _data_error(exc, tasks)
            if error is None:
                raise
            raise error from None

    def load(self, task_list):
        if list(task_list) == self.names:
            return self._loaded
        return self._manager.load(task_list)

    def __getattr__(self, name):
        return getattr(self._manager, name)


def prepare_tasks(config: LmEvalConfig) -> PreparedTasks:
    """Check the task names and load the tasks' data: every task problem surfaces here."""
    return PreparedTasks(task_manager(config), config.tasks)


def run_lm_eval(model, tokenizer, config: LmEvalConfig, prepared: PreparedTasks | None = None) -> dict:
    """Run the tasks on ``model``; returns ``{"results", "groups", "n_shot", "n_samples", "versions",
    "higher_is_better", "config"}`` (lm-eval's keys, e.g. ``results[task]["acc,none"]``)."""
    lm_eval = require_lm_eval()
    if config.batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {config.batch_size}")
    prepared = prepared if prepared is not None else prepare_tasks(config)
    lm = wrap_model(model, tokenizer, config.batch_size)
    was_training = model.training
    try:
        output = lm_eval.simple_evaluate(
            model=lm, tasks=list(prepared.names), task_manager=prepared, num_fewshot=config.num_fewshot,
            batch_size=config.batch_size, limit=config.limit, bootstrap_iters=config.bootstrap_iters,
            log_samples=False, random_seed=config.seed, numpy_random_seed=config.seed,
            torch_random_seed=config.seed, fewshot_random_seed=config.seed,
        )
    finally:
        model.train(was_training)
    if output is None:   # not the main process of a distributed run
        return {}
    return {
        "results": _plain(output.get("results", {})),
        "groups": _plain(output.get("groups", {})),
        "n_shot": _plain(output.get("n-shot", {})),
        "n_samples": _plain(output.get("n-samples", {})),
        "versions": _plain(output.get("versions", {})),
        "higher_is_better": _plain(output.get("higher_is_better", {})),
        "config": {
            "tasks": list(prepared.names),
            "include_path": None if config.include_path is None else str(config.include_path),
            "num_fewshot": config.num_fewshot,
            "limit": config.limit,
            "batch_size": config.batch_size,
            "bootstrap_iters": config.bootstrap_iters,
            "seed": config.seed,
            "lm_eval_version": getattr(lm_eval, "__version__", None),
        },
    }


def headline_metrics(task_results: dict) -> list[tuple[str, float, float | None]]:
    """``(metric, value, stderr)`` rows of one task's results worth printing (``acc``, ``acc_norm``...)."""
    values: dict[str, tuple[float, float | None]] = {}
    for key, value in task_results.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or "_stderr" in key:
            continue
        metric, _, filter_name = key.partition(",")
        label = metric if filter_name in ("", "none") else f"{metric} ({filter_name})"
        stderr = task_results.get(f"{metric}_stderr,{filter_name}" if filter_name else f"{metric}_stderr")
        values[label] = (float(value), stderr if isinstance(stderr, (int, float)) else None)
    chosen = [m for m in DISPLAY_METRICS if m in values]
    labels = chosen or sorted(values)
    return [(label, *values[label]) for label in labels]


def table_rows(lm_eval_result: dict) -> list[tuple[str, str]]:
    """One ``(row name, value text)`` per task (and metric) for the printed summary table."""
    rows = []
    for task, task_results in (lm_eval_result.get("results") or {}).items():
        for metric, value, stderr in headline_metrics(task_results):
            text = f"{value:.4g}" + (f" ± {stderr:.2g}" if stderr is not None else "")
            rows.append((f"lm_eval {task} {metric}", text))
    return rows
