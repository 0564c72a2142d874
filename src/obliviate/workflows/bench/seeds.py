"""``obliviate bench --seeds 0,1,2``: the leaderboard over several seeds, with intervals.

Each seed is a whole benchmark in ``RUN/seed<k>`` (world seed and model seed both ``k``),
so any seed's run can be inspected or resumed on its own. The aggregate
(``RUN/leaderboard.json`` / ``.md``) gives every numeric figure of every row as the mean
over seeds with a 95 % Student-t interval, and marks the figures that differ from the
retrained model's significantly (paired t-test over seeds, p < 0.05): the retrained model
is what every unlearning method should be indistinguishable from.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from scipy import stats

from obliviate.errors import UserError
from obliviate.formatting import format_metric
from obliviate.io import atomic_write_json, atomic_write_text
from obliviate.workflows.bench.config import BenchConfig
from obliviate.workflows.bench.leaderboard import run_bench
from obliviate.workflows.bench.rows import ATTACK_COLUMNS, COLUMNS, table

CONFIDENCE = 0.95
SIGNIFICANCE = 0.05
SIGNIFICANT_MARK = "*"
GOLD = "retain"  # the retrained model's row: every method is compared with it


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"`` -> (0, 1, 2); UserError for an empty list, a non-integer or a repeat."""
    names = [part.strip() for part in str(text).split(",") if part.strip()]
    if not names:
        raise UserError("--seeds names no seed (e.g. --seeds 0,1,2)")
    seeds = []
    for name in names:
        try:
            seeds.append(int(name))
        except ValueError:
            raise UserError(f"--seeds: {name!r} is not an integer") from None
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds lists a seed twice: {text}")
    return tuple(seeds)


@dataclasses.dataclass
class Estimate:
    """Mean of the per-seed values and the half-width of its interval (None with one seed)."""

    mean: float
    half_width: float | None
    values: list[float]

    def as_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci95": self.half_width, "values": self.values}


def estimate(values: Iterable[float]) -> Estimate | None:
    """Mean and Student-t 95 % half-width of the finite values; None without any."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return None
    mean = float(np.mean(finite))
    if len(finite) < 2:
        return Estimate(mean, None, finite)
    sem = float(np.std(finite, ddof=1)) / math.sqrt(len(finite))
    return Estimate(mean, float(stats.t.ppf(0.5 + CONFIDENCE / 2, len(finite) - 1)) * sem, finite)


def paired_p_value(ours: list[float | None], theirs: list[float | None]) -> float | None:
    """Two-sided paired t-test p-value over the seeds where both are finite (None with < 2).
    Differences that are all equal: 1.0 when they are 0, else 0.0 (the t statistic is infinite)."""
    pairs = [(float(a), float(b)) for a, b in zip(ours, theirs)
             if a is not None and b is not None and math.isfinite(float(a)) and math.isfinite(float(b))]
    if len(pairs) < 2:
        return None
    diffs = np.array([a - b for a, b in pairs])
    if np.allclose(diffs, diffs[0], rtol=0.0, atol=1e-12):
        return 1.0 if abs(diffs[0]) <= 1e-12 else 0.0
    return float(stats.ttest_rel([a for a, _ in pairs], [b for _, b in pairs]).pvalue)


def _numeric_keys(rows: Iterable[dict]) -> list[str]:
    keys: list[str] = []
    for row in rows:
        for key, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in keys:
                keys.append(key)
    return keys


def aggregate_rows(per_seed: dict[int, list[dict]], key_fields: tuple[str, ...], values_of=lambda row: row
                   ) -> list[dict]:
    """One row per key (e.g. (method, split)) in first-seed order: every numeric field as
    an :class:`Estimate` dict, plus ``p_vs_retain`` per field where a retrained row exists."""
    seeds = list(per_seed)
    index: dict[tuple, dict[int, dict]] = {}
    for seed in seeds:
        for row in per_seed[seed]:
            index.setdefault(tuple(row[k] for k in key_fields), {})[seed] = row
    out = []
    for key, by_seed in index.items():
        fields = _numeric_keys(values_of(r) for r in by_seed.values())
        gold = index.get((GOLD,) + key[1:]) if key_fields[0] == "method" else None
        row: dict[str, Any] = dict(zip(key_fields, key))
        row["seeds"] = sorted(by_seed)
        row["metrics"], row["p_vs_retain"] = {}, {}
        for field in fields:
            values = [values_of(by_seed[s]).get(field) if s in by_seed else None for s in seeds]
            est = estimate(values)
            row["metrics"][field] = None if est is None else est.as_dict()
            if gold is not None and key[0] != GOLD:
                theirs = [values_of(gold[s]).get(field) if s in gold else None for s in seeds]
                row["p_vs_retain"][field] = paired_p_value(values, theirs)
        out.append(row)
    return out


def format_estimate(entry: dict | None, p_value: float | None = None) -> str:
    """``mean ± half-width``, marked when significantly different from the retrained model."""
    if entry is None:
        return "-"
    text = format_metric(entry["mean"])
    if entry.get("ci95") is not None:
        text += f" ± {format_metric(entry['ci95'])}"
    if p_value is not None and p_value < SIGNIFICANCE:
        text += SIGNIFICANT_MARK
    return text


def render_seeds_markdown(board: dict) -> str:
    meta = board["meta"]
    lines = [f"# Leaderboard: `{meta['preset']}` world, seeds {', '.join(map(str, meta['seeds']))}", "",
             f"Generated by `{meta['command']}` on {meta['date']} ({meta['machine']}). Each figure is the mean over "
             f"{len(meta['seeds'])} seeds (world and model seed) ± the half-width of its 95 % Student-t interval; "
             f"`{SIGNIFICANT_MARK}` marks a figure that differs from the retrained model's (`retain` row) "
             f"significantly (paired t-test over seeds, p < {SIGNIFICANCE}). Metric definitions: as in each seed's "
             "leaderboard (`seed<k>/leaderboard.md`).", ""]
    keys = [k for k, _ in COLUMNS] + ["seconds", "cost_vs_retrain"]
    heads = [h for _, h in COLUMNS] + ["seconds", "cost vs retrain"]
    for split in meta["splits"]:
        lines += [f"## {split}", ""]
        lines += table("method", heads, [[row["method"], *[format_estimate(row["metrics"].get(k), row["p_vs_retain"].get(k))
                                                          for k in keys]]
                                         for row in board["rows"] if row["split"] == split])
        lines.append("")
    if board["attacks"]:
        present = [(k, h) for k, h in ATTACK_COLUMNS if any(k in r["metrics"] for r in board["attacks"])]
        lines += [f"## Attacks on `{meta['attack_split']}`", ""]
        lines += table("method", [h for _, h in present],
                       [[row["method"], *[format_estimate(row["metrics"].get(k), row["p_vs_retain"].get(k))
                                          for k, _ in present]] for row in board["attacks"]])
        lines.append("")
    return "\n".join(lines)


def aggregate_boards(boards: dict[int, dict], command: str) -> dict:
    """The multi-seed leaderboard from each seed's leaderboard dict."""
    first = next(iter(boards.values()))["meta"]
    rows = aggregate_rows({s: b["rows"] for s, b in boards.items()}, ("method", "split"))
    attacks = aggregate_rows({s: b["attacks"] for s, b in boards.items()}, ("method",), values_of=lambda r: r["summary"])
    # the attacks' gold row is the retrained model's attack row
    saga = aggregate_rows({s: b["saga"]["rows"] for s, b in boards.items() if b.get("saga")}, ("method", "split")) \
        if all(b.get("saga") for b in boards.values()) else []
    meta = {**{k: first[k] for k in ("preset", "splits", "attack_split", "date", "machine")},
            "seeds": list(boards), "command": command,
            "seconds": round(sum(b["meta"].get("seconds", 0.0) for b in boards.values()), 1)}
    return {"meta": meta, "rows": rows, "attacks": attacks, "saga_rows": saga,
            "per_seed": {str(s): f"seed{s}/leaderboard.json" for s in boards}}


def run_seeds(run_dir: str | Path, config: BenchConfig, seeds: tuple[int, ...], command: str) -> dict:
    """Every seed's benchmark in ``RUN/seed<k>``, then the aggregate in ``RUN``."""
    if not seeds:
        raise UserError("no seed to run")
    root = Path(run_dir)
    boards = {}
    for seed in seeds:
        overrides = {**config.train_overrides, "seed": str(seed)}
        seed_config = dataclasses.replace(config, seed=seed, train_overrides=overrides)
        boards[seed] = run_bench(root / f"seed{seed}", seed_config, command=f"{command} (seed {seed})")
    board = aggregate_boards(boards, command)
    atomic_write_json(root / "leaderboard.json", board)
    atomic_write_text(root / "leaderboard.md", render_seeds_markdown(board))
    return board
