"""``obliviate demo``: the whole pipeline on the embedded world, in minutes on a CPU.

world -> tokenizer -> full and retain models -> unlearning (three methods) ->
evaluation against the retain model -> leaderboard.md and report.md.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from obliviate.eval.report import render_report
from obliviate.workflows.bench.leaderboard import BenchConfig, render_markdown, run_bench

DEMO_METHODS = ("grad_diff", "simnpo", "rmu")


def run_demo(preset: str, run_dir: Path, seed: int = 0, echo: Callable[[str], None] = print) -> dict:
    """The demo; ``echo`` prints each line of its account (the CLI passes its own)."""
    started = time.perf_counter()
    echo(f"obliviate demo: {preset} world (seed {seed}) in {run_dir}")
    echo("  1. world, tokenizer, full model and retain model (retrained without forget10)")
    echo(f"  2. unlearning forget10 with {', '.join(DEMO_METHODS)}; 3. evaluation against the retain model")
    config = BenchConfig(preset=preset, seed=seed, splits=("forget10",), methods=DEMO_METHODS, sinks=False,
                         attacks=(), progress=True)
    board = run_bench(run_dir, config, command=f"obliviate demo --preset {preset} --run {run_dir}")
    report = render_report(run_dir)
    rows = board["rows"]
    echo("")
    echo(render_markdown(rows, [], board["meta"]).split("\n## ", 1)[1].split("\n", 1)[1])
    full = next(r for r in rows if r["method"] == "full")
    retain = next(r for r in rows if r["method"] == "retain")
    echo(
        f"The full model recalls {full['forget_unique_accuracy']:.0%} of the forget10 authors' unique facts; "
        f"the model retrained without them recalls {retain['forget_unique_accuracy']:.0%}. "
        f"Shared facts: {full['forget_shared_accuracy']:.0%} vs {retain['forget_shared_accuracy']:.0%}."
    )
    echo(f"leaderboard -> {Path(run_dir) / 'leaderboard.md'}; report -> {report}")
    echo(f"demo finished in {time.perf_counter() - started:.0f}s")
    return board
