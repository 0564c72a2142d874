"""``obliviate bench``: train what is needed on a preset world, run every registered
method on the forget splits, grade each against the retrained model, attack it, run WHP
and others on the saga (``obliviate.workflows.bench.saga``), and write ``leaderboard.md``,
``leaderboard.json`` and plots.

Cost of each deletion request is reported as a ratio to retraining, both measured on the
same machine: the unlearning wall time in this invocation, the retraining time from the
retrained model's run config (trained by this invocation, or by an earlier one whose
models it reuses: ``meta.retrain`` says which).
"""

from __future__ import annotations

import datetime
import logging
import os
import platform
import time
from pathlib import Path

from obliviate.attacks.quantize import QuantizeConfig
from obliviate.attacks.runner import AttackConfig, run_attacks
from obliviate.errors import UserError
from obliviate.formatting import format_metric
from obliviate.io import atomic_write_json, atomic_write_text
from obliviate.methods.registry import get_method
from obliviate.models.loading import load_model_and_tokenizer
from obliviate.workflows.bench.config import DENSE_METHODS, SAGA_METHODS, BenchConfig
from obliviate.workflows.bench.native import NATIVE_ROWS, sink_rows, sink_training_cost
from obliviate.workflows.bench.plots import familiarity_plot, relearn_plot, scatter_plot
from obliviate.workflows.bench.rows import (
    ATTACK_COLUMNS,
    COLUMNS,
    cells,
    deletion_costs,
    flat_summary,
    make_row,
    table,
    training_seconds,
    warning_lines,
)
from obliviate.workflows.bench.saga import render_saga_markdown, saga_section
from obliviate.workflows.evaluate import evaluate_model_dir, reference_for
from obliviate.workflows.run_dir import RunDir
from obliviate.workflows.train import make_world, train_run
from obliviate.workflows.unlearn import run_unlearning
from obliviate.world import load_world

__all__ = ["BenchConfig", "DENSE_METHODS", "SAGA_METHODS", "render_markdown", "run_bench"]

log = logging.getLogger(__name__)

# the rows already hold each model's unquantized evaluation: the quantization attack only adds 8 and 4 bits
BENCH_ATTACKS = AttackConfig(quantize=QuantizeConfig(unquantized=False))


def _check(config: BenchConfig) -> None:
    """Bad settings fail before hours of work."""
    if "whp" in config.methods:
        raise UserError("whp targets the saga, not author splits: it runs in the saga section (--whp)")
    for name in config.methods + (config.saga_methods if config.whp else ()):
        get_method(name)
    if config.whp and config.curve_every < 1:
        raise UserError(f"the familiarity curve needs curve_every >= 1, got {config.curve_every}")


def _split_rows(run: RunDir, world, split: str, config: BenchConfig) -> tuple[list[dict], dict]:
    """The full model, the retrained model and every method on one forget split."""
    trained = train_run(run.world_dir, run.root, forget=split, overrides=config.train_overrides,
                        progress=config.progress)
    retrain = training_seconds(trained["retain"])
    retrain_seconds = retrain["seconds"]
    reference = reference_for(run.retain_model(split), world, split)
    full_eval = evaluate_model_dir(run.full_model, world, split, run.eval_dir / f"full-{split}.json",
                                   reference=reference)
    retain_eval = evaluate_model_dir(run.retain_model(split), world, split, run.eval_dir / f"retain-{split}.json",
                                     reference=reference)
    rows = [make_row("full", split, full_eval["summary"], None, retrain_seconds, "reference"),
            make_row("retain", split, retain_eval["summary"], retrain_seconds, retrain_seconds, "gold standard")]
    for method in config.methods:
        out = run.model_dir(f"{method}-{split}")
        started = time.perf_counter()
        result = run_unlearning(method, run.full_model, world, split, out,
                                overrides=config.method_overrides.get(method, {}), evaluate=False)
        seconds = time.perf_counter() - started
        evaluation = evaluate_model_dir(out, world, split, run.eval_dir / f"{method}-{split}.json", reference=reference)
        rows.append(make_row(method, split, evaluation["summary"], seconds, retrain_seconds, "post-hoc"))
        log.info("%s on %s: %s steps in %.1fs", method, split, result["steps"], seconds)
    if config.sinks:
        rows.extend(sink_rows(run, world, split, reference, config, retrain_seconds))
    return rows, retrain


def _attack_all(run: RunDir, world, split: str, config: BenchConfig) -> tuple[list[dict], dict]:
    """Every attack on every unlearned model of ``split``. The switched sink model is attacked
    as served (threat model (a): the server keeps the forgotten sinks off, also while the
    attacker fine-tunes); the purged export as released weights (b): a plain Llama."""
    retain, tokenizer = load_model_and_tokenizer(run.retain_model(split))
    full, _ = load_model_and_tokenizer(run.full_model)
    rows, details = [], {}
    for method in (*config.methods, *(NATIVE_ROWS if config.sinks else ())):
        path = run.model_dir(f"{method}-{split}")
        if not path.is_dir():
            continue
        model, _ = load_model_and_tokenizer(path)
        result = run_attacks(model, tokenizer, world, split, list(config.attacks), BENCH_ATTACKS,
                             retain_model=retain, full_model=full)
        atomic_write_json(run.eval_dir / f"attacks-{method}-{split}.json", result)
        details[method] = result
        rows.append({"method": method, "summary": flat_summary(result.get("summary", {}))})
    return rows, details


def run_bench(run_dir: str | Path, config: BenchConfig = BenchConfig(), command: str = "obliviate bench") -> dict:
    """The whole benchmark; returns the leaderboard dict (also written to RUN/leaderboard.json)."""
    bench_started = time.perf_counter()
    _check(config)
    run = RunDir.open(run_dir)
    if not (run.world_dir / "world.json").is_file():
        make_world(config.preset, config.seed, run.world_dir)
    world = load_world(run.world_dir)
    rows: list[dict] = []
    attack_rows: list[dict] = []
    attack_full: dict[str, dict] = {}
    retrain: dict[str, dict] = {}
    # first, so that a fresh run times both trainings itself (later calls reuse them)
    sink_training = sink_training_cost(run, config) if config.sinks else None
    for split in config.splits:
        split_rows, retrain[split] = _split_rows(run, world, split, config)
        rows.extend(split_rows)
        if config.attacks and split == config.attack_split:
            attack_rows, attack_full = _attack_all(run, world, split, config)
    saga = None
    if config.whp:
        saga = saga_section(run, world, config)
        retrain["saga"] = saga["retrain"]
    # the run's own world names the board: a reused run may hold another preset's world, or TOFU's
    embedded = world.manifest.get("name") == "embedded"
    meta = {"preset": world.manifest.get("preset", config.preset) if embedded else world.manifest.get("name", "user"),
            "seed": world.manifest.get("seed", config.seed) if embedded else config.seed,
            "splits": list(config.splits), "command": command,
            "attack_split": config.attack_split, "date": datetime.date.today().isoformat(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "retrain": retrain,
            "sink_training": sink_training,
            "seconds": round(time.perf_counter() - bench_started, 1)}
    board = {"meta": meta, "rows": rows, "attacks": attack_rows, "attack_details": attack_full, "saga": saga,
             "deletion_cost": deletion_costs(rows + (saga["rows"] if saga else []))}
    atomic_write_json(run.root / "leaderboard.json", board)
    atomic_write_text(run.root / "leaderboard.md", render_markdown(rows, attack_rows, meta, saga))
    for split in config.splits:
        scatter_plot(rows, split, run.plots_dir / f"fq_vs_mu_{split}.png")
    if saga:
        scatter_plot(saga["rows"], "saga", run.plots_dir / "fq_vs_mu_saga.png")
        familiarity_plot(saga["familiarity_curve"], run.plots_dir / "familiarity_curves.png")
    if attack_full:
        relearn_plot(attack_full, run.plots_dir / "relearning_curves.png")
    return board


# -- markdown -------------------------------------------------------------------------------
def _cost_lines(costs: dict, meta: dict) -> list[str]:
    splits = list(meta["splits"]) + (["saga"] if any("saga" in c for c in costs.values()) else [])
    retrain = ", ".join(f"{split} {r['seconds']:.0f} s" + ("" if r["trained_now"] else " (from the reused model's run config)")
                        for split, r in meta.get("retrain", {}).items())
    lines = ["## Cost of one deletion request", "",
             "Wall time of the deletion request / wall time of retraining without the forgotten data "
             "(same machine)" + (f". Retraining: {retrain}." if retrain else "."), ""]
    lines += table("method", splits, [[method, *cells(by_split, splits)] for method, by_split in costs.items()])
    sinks = meta.get("sink_training")
    if sinks:
        lines += ["", f"The switch needs a sink model, trained once before any deletion: {sinks['sinks_seconds']:.0f} s "
                      f"vs {sinks['dense_seconds']:.0f} s for the dense full model "
                      f"(x{format_metric(sinks['sinks_over_dense'])})."]
    lines.append("")
    return lines


def render_markdown(rows: list[dict], attack_rows: list[dict], meta: dict, saga: dict | None = None) -> str:
    lines = [f"# Leaderboard: `{meta['preset']}` world, seed {meta['seed']}", "",
             f"Generated by `{meta['command']}` on {meta['date']} ({meta['machine']}). "
             "FQ = forget quality (KS p-value of the truth ratios of every forget item vs the retrained model; "
             "1.0 = indistinguishable), MU = model utility, forget TR, MIA AUC (Min-K%) and PrivLeak "
             "(0 = the retrained model's leakage, -100 = forgot nothing) as open-unlearning defines them. "
             "Accuracies are greedy exact-answer accuracies. "
             "Cost = wall time of the deletion request / wall time of retraining, measured in this run.", ""]
    for split in meta["splits"]:
        lines += [f"## {split}", ""]
        lines += table("method", [h for _, h in COLUMNS] + ["seconds", "cost vs retrain"],
                       [[row["method"], *cells(row, [k for k, _ in COLUMNS] + ["seconds", "cost_vs_retrain"])]
                        for row in rows if row["split"] == split])
        lines.append("")
        lines += warning_lines([row for row in rows if row["split"] == split])
    if attack_rows:
        lines += [f"## Attacks on `{meta['attack_split']}` (does the knowledge come back?)", "",
                  "Held-apart forget facts: greedy accuracy before and after relearning on the other half "
                  "(k up to 50 steps), the relearning gap (area between this model's and the retrained model's "
                  "recovery curves), accuracy with in-context facts of the same source, and with any adversarial "
                  "prompt form. Every number of every attack is in leaderboard.json.", ""]
        keys = [k for k, _ in ATTACK_COLUMNS if any(k in r["summary"] for r in attack_rows)]
        lines += table("method", [h for k, h in ATTACK_COLUMNS if k in keys],
                       [[row["method"], *cells(row["summary"], keys)] for row in attack_rows])
        lines.append("")
    if saga:
        lines += render_saga_markdown(saga)
    costs = deletion_costs(rows + (saga["rows"] if saga else []))
    if costs:
        lines += _cost_lines(costs, meta)
    return "\n".join(lines)
