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

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obliviate.errors import UserError
from obliviate.io import atomic_write_json, atomic_write_text, read_json
from obliviate.workflows.run_dir import RunDir

log = logging.getLogger(__name__)

# Methods run on the dense full model for author forget splits (WHP targets the saga: it
# has its own section; the switch needs a sink model: it is run on every split by `sinks`).
DENSE_METHODS = ("grad_ascent", "grad_diff", "npo", "simnpo", "rmu", "idk_dpo", "dememorize", "icul")
SAGA_METHODS = ("grad_diff", "npo")      # run on the saga next to WHP
COLUMNS = (
    ("forget_quality", "FQ"), ("model_utility", "MU"), ("forget_truth_ratio", "forget TR"),
    ("mia_auc_mink", "MIA AUC"), ("privleak", "PrivLeak"), ("forget_unique_accuracy", "forget uniq acc"),
    ("forget_shared_accuracy", "forget shared acc"), ("retain_unique_accuracy", "retain uniq acc"),
)
# also kept in every row of the JSON (the saga section's columns)
EXTRA_KEYS = ("retain_truth_ratio", "general_truth_ratio", "familiarity_completion", "familiarity_probability")


ATTACK_COLUMNS = (
    ("relearn_accuracy_before", "relearn: acc before"), ("relearn_accuracy_after", "relearn: acc after"),
    ("relearn_gap_accuracy", "relearning gap"), ("icl_accuracy_zero_shot", "ICL: 0 shots"),
    ("icl_accuracy", "ICL: with shots"), ("adversarial_plain_accuracy", "adversarial: plain"),
    ("adversarial_any_accuracy", "adversarial: any form"), ("gcg_prob_with", "GCG: prob with suffix"),
)


@dataclass
class BenchConfig:
    preset: str = "tiny"
    seed: int = 0
    splits: tuple[str, ...] = ("forget01", "forget05", "forget10")
    methods: tuple[str, ...] = DENSE_METHODS
    sinks: bool = True                   # train a sink model and grade the switch
    attacks: tuple[str, ...] = ("relearn", "icl", "adversarial")
    attack_split: str = "forget10"       # attacks are run on this split's unlearned models
    whp: bool = True                     # saga section: WHP + saga_methods vs the saga-free retrain
    saga_methods: tuple[str, ...] = SAGA_METHODS
    curve_every: int = 10                # familiarity measured every this many WHP fine-tuning steps
    method_overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    train_overrides: dict[str, str] = field(default_factory=dict)
    progress: bool = False


def training_seconds(result) -> dict:
    """Training wall time of a model from ``train_run`` (a ``TrainResult``): measured now, or
    read from its run config when an earlier invocation trained it."""
    from obliviate.models.loading import read_run_config

    if not result.reused:
        return {"seconds": round(result.seconds, 2), "trained_now": True}
    return {"seconds": float(read_run_config(result.path).get("seconds", 0.0)), "trained_now": False}


def _evaluate_dir(model_dir: Path, world, forget: str, reference, out_json: Path) -> dict:
    from obliviate.eval.evaluator import EvalConfig, evaluate
    from obliviate.eval.fingerprint import model_dir_fingerprint
    from obliviate.models.loading import load_model_and_tokenizer

    # the reference's cache file is named by the retain model's content hash
    reference_id = str(reference.path) if reference is not None else None
    fingerprint = model_dir_fingerprint(model_dir)
    if out_json.is_file():
        cached = read_json(out_json)
        if cached.get("config", {}).get("model_fingerprint") == fingerprint and \
                cached.get("config", {}).get("reference_id") == reference_id:
            return cached
    model, tokenizer = load_model_and_tokenizer(model_dir)
    result = evaluate(model, tokenizer, world, forget, reference=reference, config=EvalConfig(), model_path=model_dir,
                      model_fingerprint=fingerprint)
    result.setdefault("config", {})["reference_id"] = reference_id
    atomic_write_json(out_json, result)
    return result


def _row(name: str, split: str, summary: dict, seconds: float | None, retrain_seconds: float, kind: str) -> dict:
    row = {"method": name, "split": split, "kind": kind}
    for key in [k for k, _ in COLUMNS] + list(EXTRA_KEYS):
        row[key] = summary.get(key)
    row["seconds"] = None if seconds is None else round(seconds, 3)
    row["cost_vs_retrain"] = None if seconds is None or not retrain_seconds else seconds / retrain_seconds
    return row


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.1e}"
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def deletion_costs(rows: list[dict]) -> dict[str, dict[str, float]]:
    """``{method: {split: cost of one deletion request / retraining}}`` (unlearned models only)."""
    costs: dict[str, dict[str, float]] = {}
    for row in rows:
        if row["kind"] in ("post-hoc", "native") and row.get("cost_vs_retrain") is not None:
            costs.setdefault(row["method"], {})[row["split"]] = row["cost_vs_retrain"]
    return costs


def _cost_lines(costs: dict, meta: dict) -> list[str]:
    splits = list(meta["splits"]) + (["saga"] if any("saga" in c for c in costs.values()) else [])
    retrain = ", ".join(f"{split} {r['seconds']:.0f} s" + ("" if r["trained_now"] else " (from the reused model's run config)")
                        for split, r in meta.get("retrain", {}).items())
    lines = ["## Cost of one deletion request", "",
             "Wall time of the deletion request / wall time of retraining without the forgotten data "
             "(same machine)" + (f". Retraining: {retrain}." if retrain else "."), "",
             "| method | " + " | ".join(splits) + " |", "|---" * (len(splits) + 1) + "|"]
    for method, by_split in costs.items():
        lines.append(f"| {method} | " + " | ".join(_fmt(by_split.get(s)) for s in splits) + " |")
    sinks = meta.get("sink_training")
    if sinks:
        lines += ["", f"The switch needs a sink model, trained once before any deletion: {sinks['sinks_seconds']:.0f} s "
                      f"vs {sinks['dense_seconds']:.0f} s for the dense full model "
                      f"(x{_fmt(sinks['sinks_over_dense'])})."]
    lines.append("")
    return lines


def render_markdown(rows: list[dict], attack_rows: list[dict], meta: dict, saga: dict | None = None) -> str:
    lines = [f"# Leaderboard: `{meta['preset']}` world, seed {meta['seed']}", "",
             f"Generated by `{meta['command']}` on {meta['date']} ({meta['machine']}). "
             "FQ = forget quality (KS p-value of forget truth ratios vs the retrained model; 1.0 = indistinguishable). "
             "MU = model utility. Accuracies are greedy exact-answer accuracies. "
             "Cost = wall time of the deletion request / wall time of retraining, measured in this run.", ""]
    for split in meta["splits"]:
        lines += [f"## {split}", "", "| method | " + " | ".join(h for _, h in COLUMNS) + " | seconds | cost vs retrain |",
                  "|---" * (len(COLUMNS) + 3) + "|"]
        for row in (r for r in rows if r["split"] == split):
            cells = [_fmt(row[k]) for k, _ in COLUMNS] + [_fmt(row["seconds"]), _fmt(row["cost_vs_retrain"])]
            lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
        lines.append("")
    if attack_rows:
        lines += [f"## Attacks on `{meta['attack_split']}` (does the knowledge come back?)", "",
                  "Held-apart forget facts: greedy accuracy before and after relearning on the other half "
                  "(k up to 50 steps), the relearning gap (area between this model's and the retrained model's "
                  "recovery curves), accuracy with in-context facts of the same source, and with any adversarial "
                  "prompt form. Every number of every attack is in leaderboard.json.", ""]
        keys = [k for k, _ in ATTACK_COLUMNS if any(k in r["summary"] for r in attack_rows)]
        heads = [h for k, h in ATTACK_COLUMNS if k in keys]
        lines += ["| method | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
        for row in attack_rows:
            lines.append(f"| {row['method']} | " + " | ".join(_fmt(row['summary'].get(k)) for k in keys) + " |")
        lines.append("")
    if saga:
        from obliviate.workflows.bench.saga import render_saga_markdown

        lines += render_saga_markdown(saga)
    costs = deletion_costs(rows + (saga["rows"] if saga else []))
    if costs:
        lines += _cost_lines(costs, meta)
    return "\n".join(lines)


def _save_figure(fig, path: Path) -> Path:
    """Write a PNG atomically (the report's writer) and release the pyplot figure."""
    import matplotlib.pyplot as plt

    from obliviate.eval.report import save_figure

    fig.tight_layout()
    try:
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def scatter_plot(rows: list[dict], split: str, path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [r for r in rows if r["split"] == split and r["forget_quality"] is not None and r["model_utility"] is not None]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for r in points:
        marker = "*" if r["method"] == "retain" else ("s" if r["method"] == "full" else "o")
        ax.scatter(r["model_utility"], max(r["forget_quality"], 1e-12), marker=marker, s=120 if marker == "*" else 50)
        ax.annotate(r["method"], (r["model_utility"], max(r["forget_quality"], 1e-12)), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_yscale("log")
    ax.set_xlabel("model utility")
    ax.set_ylabel("forget quality (KS p-value, log)")
    ax.set_title(f"forget quality vs model utility ({split}); * = retrained model")
    return _save_figure(fig, path)


def relearn_plot(attack_results: dict[str, dict], path: Path, metric: str = "prob") -> Path | None:
    """Recovery curves (held-apart forget answer probability vs relearning steps): every
    method's unlearned model, plus the retain and full baselines (drawn once, dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    first = next(iter(attack_results), None)
    drawn = False
    for method, result in attack_results.items():
        curves = result.get("attacks", {}).get("relearn", {}).get("curves", {})
        for role, points in curves.items():
            if role != "unlearned" and method != first:
                continue
            xs = [p["k"] for p in points if p.get(metric) is not None]
            ys = [p[metric] for p in points if p.get(metric) is not None]
            if not xs:
                continue
            ax.plot(xs, ys, marker="o", label=method if role == "unlearned" else f"{role} model",
                    linestyle="-" if role == "unlearned" else "--")
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("relearning steps on the other half of the forget set")
    ax.set_ylabel(f"held-apart forget answers: {metric}")
    ax.legend(fontsize=7)
    return _save_figure(fig, path)


def run_bench(run_dir: str | Path, config: BenchConfig = BenchConfig(), command: str = "obliviate bench") -> dict:
    """The whole benchmark; returns the leaderboard dict (also written to RUN/leaderboard.json)."""
    import datetime
    import platform

    from obliviate.workflows.evaluate import reference_for
    from obliviate.eval.evaluator import EvalConfig
    from obliviate.methods.registry import get_method
    from obliviate.workflows.unlearn import run_unlearning
    from obliviate.workflows.train import make_world, train_run
    from obliviate.world import load_world

    bench_started = time.perf_counter()
    if "whp" in config.methods:
        raise UserError("whp targets the saga, not author splits: it runs in the saga section (--whp)")
    for name in config.methods + (config.saga_methods if config.whp else ()):
        get_method(name)  # unknown names fail before hours of work
    if config.whp and config.curve_every < 1:
        raise UserError(f"the familiarity curve needs curve_every >= 1, got {config.curve_every}")
    run = RunDir.open(run_dir)
    if not (run.world_dir / "world.json").is_file():
        make_world(config.preset, config.seed, run.world_dir)
    world = load_world(run.world_dir)
    rows: list[dict] = []
    attack_rows: list[dict] = []
    attack_full: dict[str, dict] = {}
    retrain: dict[str, dict] = {}
    # first, so that a fresh run times both trainings itself (later calls reuse them)
    sink_training = _sink_training_cost(run, config) if config.sinks else None
    for split in config.splits:
        trained = train_run(run.world_dir, run.root, forget=split, overrides=config.train_overrides,
                            progress=config.progress)
        retrain[split] = training_seconds(trained["retain"])
        retrain_seconds = retrain[split]["seconds"]
        reference = reference_for(run.retain_model(split), world, split, EvalConfig())
        full_eval = _evaluate_dir(run.full_model, world, split, reference, run.eval_dir / f"full-{split}.json")
        rows.append(_row("full", split, full_eval["summary"], None, retrain_seconds, "reference"))
        retain_eval = _evaluate_dir(run.retain_model(split), world, split, reference,
                                    run.eval_dir / f"retain-{split}.json")
        rows.append(_row("retain", split, retain_eval["summary"], retrain_seconds, retrain_seconds, "gold standard"))
        for method in config.methods:
            out = run.model_dir(f"{method}-{split}")
            started = time.perf_counter()
            result = run_unlearning(method, run.full_model, run.world_dir, split, out,
                                    overrides=config.method_overrides.get(method, {}), evaluate=False)
            seconds = time.perf_counter() - started
            evaluation = _evaluate_dir(out, world, split, reference, run.eval_dir / f"{method}-{split}.json")
            rows.append(_row(method, split, evaluation["summary"], seconds, retrain_seconds, "post-hoc"))
            log.info("%s on %s: %s steps in %.1fs", method, split, result.get("steps"), seconds)
        if config.sinks:
            rows.extend(_sink_rows(run, world, split, reference, config, retrain_seconds))
        if config.attacks and split == config.attack_split:
            attack_rows, attack_full = _attack_all(run, world, split, config)
    saga = None
    if config.whp:
        from obliviate.workflows.bench.saga import saga_section

        saga = saga_section(run, world, config)
        retrain["saga"] = saga["retrain"]
    meta = {"preset": config.preset, "seed": config.seed, "splits": list(config.splits), "command": command,
            "attack_split": config.attack_split, "date": datetime.date.today().isoformat(),
            "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPU cores", "retrain": retrain,
            "sink_training": sink_training,
            "seconds": round(time.perf_counter() - bench_started, 1)}
    board = {"meta": meta, "rows": rows, "attacks": attack_rows, "attack_details": attack_full, "saga": saga,
             "deletion_cost": deletion_costs(rows + (saga["rows"] if saga else []))}
    atomic_write_json(run.root / "leaderboard.json", board)
    atomic_write_text(run.root / "leaderboard.md", render_markdown(rows, attack_rows, meta, saga))
    for split in config.splits:
        scatter_plot(rows, split, run.plots_dir / f"fq_vs_mu_{split}.png")
    if saga:
        from obliviate.workflows.bench.saga import familiarity_plot

        scatter_plot(saga["rows"], "saga", run.plots_dir / "fq_vs_mu_saga.png")
        familiarity_plot(saga["familiarity_curve"], run.plots_dir / "familiarity_curves.png")
    if attack_full:
        relearn_plot(attack_full, run.plots_dir / "relearning_curves.png")
    return board


def _sink_training_cost(run: RunDir, config: BenchConfig) -> dict | None:
    """The native method's one-time extra cost: training with sinks vs dense, same data and config."""
    from obliviate.workflows.train import train_run

    sinks = train_run(run.world_dir, run.root, arch="sinks", which=("full",), overrides=config.train_overrides,
                      progress=config.progress)["full"]
    dense = train_run(run.world_dir, run.root, which=("full",), overrides=config.train_overrides,
                      progress=config.progress)["full"]
    sink_time, dense_time = training_seconds(sinks), training_seconds(dense)
    if not dense_time["seconds"]:
        return None
    return {"sinks_seconds": sink_time["seconds"], "dense_seconds": dense_time["seconds"],
            "sinks_over_dense": sink_time["seconds"] / dense_time["seconds"],
            "trained_now": {"sinks": sink_time["trained_now"], "dense": dense_time["trained_now"]}}


def _sink_rows(run: RunDir, world, split: str, reference, config: BenchConfig, retrain_seconds: float) -> list[dict]:
    """Native unlearning: train a sink model once, switch the forget sources off."""
    from obliviate.workflows.unlearn import run_unlearning
    from obliviate.workflows.train import train_run

    trained = train_run(run.world_dir, run.root, forget=split, arch="sinks", which=("full",),
                        overrides=config.train_overrides, progress=config.progress)
    sink_full = trained["full"].path
    rows = []
    evaluation = _evaluate_dir(sink_full, world, split, reference, run.eval_dir / f"sinks-full-{split}.json")
    rows.append(_row("sinks (nothing off)", split, evaluation["summary"], None, retrain_seconds, "native"))
    out = run.model_dir(f"switch-{split}")
    started = time.perf_counter()
    run_unlearning("switch", sink_full, run.world_dir, split, out, evaluate=False)
    seconds = time.perf_counter() - started
    evaluation = _evaluate_dir(out, world, split, reference, run.eval_dir / f"switch-{split}.json")
    rows.append(_row("switch", split, evaluation["summary"], seconds, retrain_seconds, "native"))
    return rows


def _attack_all(run: RunDir, world, split: str, config: BenchConfig) -> tuple[list[dict], dict]:
    from obliviate.attacks.runner import run_attacks
    from obliviate.models.loading import load_model_and_tokenizer

    retain, tokenizer = load_model_and_tokenizer(run.retain_model(split))
    full, _ = load_model_and_tokenizer(run.full_model)
    rows, details = [], {}
    for method in config.methods:
        path = run.model_dir(f"{method}-{split}")
        if not path.is_dir():
            continue
        model, _ = load_model_and_tokenizer(path)
        result = run_attacks(model, tokenizer, world, split, list(config.attacks), retain_model=retain, full_model=full)
        atomic_write_json(run.eval_dir / f"attacks-{method}-{split}.json", result)
        details[method] = result
        rows.append({"method": method, "summary": _flat(result.get("summary", {}))})
    return rows, details


def _flat(summary: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in summary.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat(value, name + "."))
        elif isinstance(value, (int, float)) or value is None:
            flat[name] = value
    return flat

