"""Markdown report with plots from a run's evaluation JSONs (``RUN/eval/*.json``).

Plots use matplotlib's object API (``Figure`` renders with Agg): no pyplot global state,
no display needed. Every file is written to a temporary sibling and renamed into place.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_curve

from obliviate.errors import UserError
from obliviate.eval.metrics.mia import ATTACKS
from obliviate.io import atomic_write_text, atomic_write_with, read_json

REPORT_KEYS = (
    "forget_quality", "model_utility", "forget_truth_ratio", "forget_Q_A_Prob", "forget_Q_A_ROUGE",
    "retain_truth_ratio", "retain_prob", "retain_rouge", "general_truth_ratio", "general_prob", "general_rouge",
    "mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus", "privleak",
    "exact_memorization", "extraction_strength", "verbmem_f", "knowmem_f",
    "familiarity_completion", "familiarity_probability",
    "forget_unique_accuracy", "forget_shared_accuracy", "forget_inferred_accuracy",
    "retain_unique_accuracy", "retain_shared_accuracy", "retain_inferred_accuracy",
    "general_accuracy", "saga_accuracy",
)
ACCURACY_KEYS = ("forget_unique", "forget_shared", "forget_inferred", "retain_unique", "retain_shared",
                 "retain_inferred", "general", "saga")


def load_evaluations(run_dir: Path) -> dict[str, dict]:
    """``{name: eval JSON}`` for every evaluation JSON directly under ``RUN/eval``."""
    eval_dir = run_dir / "eval"
    evaluations: dict[str, dict] = {}
    for path in sorted(eval_dir.glob("*.json")) if eval_dir.is_dir() else []:
        data = read_json(path, "evaluation JSON")
        if isinstance(data, dict) and all(isinstance(data.get(k), dict) for k in ("summary", "per_item", "config")):
            evaluations[path.stem] = data
    if not evaluations:
        raise UserError(f"no evaluation JSONs in {eval_dir} (run `obliviate eval --out {eval_dir}/NAME.json` first)")
    return evaluations


def save_figure(fig, path: Path) -> Path:
    """Write ``fig`` as a PNG atomically (temporary sibling, then rename)."""
    return atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight"))


def _figure(width: float = 6.0, height: float = 4.0):
    # matplotlib takes seconds to import: only when a report is drawn
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def plot_truth_ratios(name: str, evaluation: dict, path: Path) -> Path | None:
    """Histogram of log10 forget TRs: evaluated model vs the retain reference."""
    own = [v for v in evaluation["per_item"].get("forget_truth_ratio", {}).values() if v is not None and v > 0]
    if not own:
        return None
    reference = evaluation["per_item"].get("reference") or {}
    ref = [v for v in (reference.get("forget_truth_ratio") or {}).values() if v is not None and v > 0]
    fig, ax = _figure()
    values = np.log10(own + ref)
    bins = np.linspace(values.min() - 1e-9, values.max() + 1e-9, 21)
    ax.hist(np.log10(own), bins=bins, alpha=0.6, label=name)
    if ref:
        ax.hist(np.log10(ref), bins=bins, alpha=0.6, label="retain (reference)")
    ax.set_xlabel("log10 truth ratio (forget items)")
    ax.set_ylabel("items")
    fq = evaluation["summary"].get("forget_quality")
    ax.set_title(f"{name}: forget truth ratios" + (f" (forget quality {fq:.3g})" if fq is not None else ""))
    ax.legend()
    return save_figure(fig, path)


def plot_accuracy(evaluations: dict[str, dict], path: Path) -> Path:
    """Grouped bars of greedy exact-answer accuracy per split and fact kind."""
    fig, ax = _figure(max(6.0, 1.2 * len(ACCURACY_KEYS)), 4.0)
    width = 0.8 / len(evaluations)
    positions = np.arange(len(ACCURACY_KEYS))
    for offset, (name, evaluation) in enumerate(evaluations.items()):
        heights = [evaluation["summary"].get(f"{key}_accuracy") for key in ACCURACY_KEYS]
        ax.bar(positions + offset * width, [np.nan if h is None else h for h in heights], width, label=name)
    ax.set_xticks(positions + width * (len(evaluations) - 1) / 2, ACCURACY_KEYS, rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("exact-answer accuracy")
    ax.legend()
    return save_figure(fig, path)


def plot_mia_roc(name: str, evaluation: dict, path: Path) -> Path | None:
    """ROC curves of each MIA attack, forget (members) vs holdout (non-members)."""
    rows = evaluation["per_item"].get("mia") or {}
    members, nonmembers = list((rows.get("forget") or {}).values()), list((rows.get("holdout") or {}).values())
    if not members or not nonmembers:
        return None
    fig, ax = _figure(5.0, 5.0)
    labels = np.concatenate([np.ones(len(members)), np.zeros(len(nonmembers))])
    for attack in ATTACKS:
        if not all(attack in r for r in members + nonmembers):  # GradNorm off, no reference
            continue
        scores = np.array([r[attack] for r in members + nonmembers], dtype=np.float64)
        fpr, tpr, _ = roc_curve(labels, scores)
        auc = evaluation["summary"].get(f"mia_{attack}")
        ax.plot(fpr, tpr, label=f"{attack} (AUC {auc:.3f})" if auc is not None else attack)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set_xlabel("false positive rate (holdout)")
    ax.set_ylabel("true positive rate (forget)")
    ax.set_title(f"{name}: membership inference")
    ax.legend(loc="lower right")
    return save_figure(fig, path)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def render_report(run_dir: str | os.PathLike) -> Path:
    """Write ``RUN/report.md`` and ``RUN/plots/*.png``; returns the report path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory does not exist: {run_dir}")
    evaluations = load_evaluations(run_dir)
    plots = run_dir / "plots"
    names = list(evaluations)

    lines = [f"# Evaluation report: {run_dir.name}", ""]
    forgets = sorted({e["config"].get("forget", "?") for e in evaluations.values()})
    lines += [f"Forget split(s): {', '.join(map(str, forgets))}. "
              "Forget quality: KS p-value of forget truth ratios vs the retain model (1 = indistinguishable).", ""]
    lines.append("| metric | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for key in REPORT_KEYS:
        lines.append(f"| {key} | " + " | ".join(_fmt(evaluations[n]["summary"].get(key)) for n in names) + " |")
    lines.append("")

    lines += ["## Exact-answer accuracy by split and fact kind", "",
              f"![accuracy]({plot_accuracy(evaluations, plots / 'accuracy.png').relative_to(run_dir).as_posix()})", ""]
    lines += ["## Truth ratios (forget items)", ""]
    for name, evaluation in evaluations.items():
        path = plot_truth_ratios(name, evaluation, plots / f"truth_ratio_{name}.png")
        if path is not None:
            lines += [f"![truth ratios {name}]({path.relative_to(run_dir).as_posix()})", ""]
    lines += ["## Membership inference (forget vs holdout)", ""]
    any_roc = False
    for name, evaluation in evaluations.items():
        path = plot_mia_roc(name, evaluation, plots / f"mia_roc_{name}.png")
        if path is not None:
            any_roc = True
            lines += [f"![MIA ROC {name}]({path.relative_to(run_dir).as_posix()})", ""]
    if not any_roc:
        lines += ["No holdout items in this world: no membership inference.", ""]
    return atomic_write_text(run_dir / "report.md", "\n".join(lines))
