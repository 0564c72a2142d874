"""Leaderboard rows: one per (method, split), their columns, and the cost of a deletion."""

from __future__ import annotations

from obliviate.formatting import format_metric
from obliviate.models.loading import read_run_config
from obliviate.train.trainer import TrainResult

COLUMNS = (
    ("forget_quality", "FQ"), ("model_utility", "MU"), ("forget_truth_ratio", "forget TR"),
    ("mia_min_k", "MIA AUC"), ("privleak", "PrivLeak"), ("forget_unique_accuracy", "forget uniq acc"),
    ("forget_shared_accuracy", "forget shared acc"), ("retain_unique_accuracy", "retain uniq acc"),
)
# also kept in every row of the JSON (the saga section's columns, our forget-quality checks, the other MIAs)
EXTRA_KEYS = ("retain_truth_ratio", "general_truth_ratio", "familiarity_completion", "familiarity_probability",
              "forget_quality_unique", "forget_quality_prob", "forget_accuracy_gap", "forget_quality_warning",
              "forget_Q_A_Prob", "extraction_strength", "mia_loss", "mia_gradnorm", "mia_reference")

ATTACK_COLUMNS = (
    ("relearn_accuracy_before", "relearn: acc before"), ("relearn_accuracy_after", "relearn: acc after"),
    ("relearn_gap_accuracy", "relearning gap"), ("icl_accuracy_zero_shot", "ICL: 0 shots"),
    ("icl_accuracy", "ICL: with shots"), ("adversarial_plain_accuracy", "adversarial: plain"),
    ("adversarial_any_accuracy", "adversarial: any form"), ("gcg_prob_with", "GCG: prob with suffix"),
    ("quantize_forget_unique_accuracy_8", "8-bit: forget uniq acc"),
    ("quantize_forget_unique_accuracy_4", "4-bit: forget uniq acc"),
    ("format_worst_forget_accuracy", "format shift: worst form acc"),
)


def make_row(name: str, split: str, summary: dict, seconds: float | None, retrain_seconds: float, kind: str) -> dict:
    """A leaderboard row: the summary's columns plus the deletion's wall time and its cost
    relative to retraining."""
    row = {"method": name, "split": split, "kind": kind}
    for key in [k for k, _ in COLUMNS] + list(EXTRA_KEYS):
        row[key] = summary.get(key)
    row["seconds"] = None if seconds is None else round(seconds, 3)
    row["cost_vs_retrain"] = None if seconds is None or not retrain_seconds else seconds / retrain_seconds
    return row


def training_seconds(result: TrainResult) -> dict:
    """Training wall time of a model from ``train_run``: measured now, or read from its run
    config when an earlier invocation trained it."""
    if not result.reused:
        return {"seconds": round(result.seconds, 2), "trained_now": True}
    return {"seconds": float(read_run_config(result.path).get("seconds", 0.0)), "trained_now": False}


def deletion_costs(rows: list[dict]) -> dict[str, dict[str, float]]:
    """``{method: {split: cost of one deletion request / retraining}}`` (unlearned models only)."""
    costs: dict[str, dict[str, float]] = {}
    for row in rows:
        if row["kind"] in ("post-hoc", "native") and row.get("cost_vs_retrain") is not None:
            costs.setdefault(row["method"], {})[row["split"]] = row["cost_vs_retrain"]
    return costs


def table(header: str, heads: list[str], body: list[list[str]]) -> list[str]:
    """A markdown table: first column ``header``, then ``heads``; ``body`` rows of cells."""
    lines = [f"| {header} | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    lines += [f"| {cells[0]} | " + " | ".join(cells[1:]) + " |" for cells in body]
    return lines


# marks a forget quality that its two checks contradict (rows[...]["forget_quality_warning"])
WARNING_MARK = " (!)"


def cells(row: dict, keys) -> list[str]:
    out = [format_metric(row.get(k)) for k in keys]
    if row.get("forget_quality_warning") and "forget_quality" in keys:
        out[list(keys).index("forget_quality")] += WARNING_MARK
    return out


def warning_lines(rows: list[dict]) -> list[str]:
    """One line per row whose forget quality its checks contradict (KS on answer probability,
    exact-answer accuracy gap vs the retrained model)."""
    warned = [r for r in rows if r.get("forget_quality_warning")]
    if not warned:
        return []
    return [f"{WARNING_MARK.strip()} forget quality contradicted by its checks:", ""] + \
        [f"- {r['method']} ({r['split']}): {r['forget_quality_warning']}" for r in warned] + [""]


def flat_summary(summary: dict, prefix: str = "") -> dict:
    """Nested attack summaries as ``{"relearn.x": number}`` (numbers and None only)."""
    flat = {}
    for key, value in summary.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_summary(value, name + "."))
        elif isinstance(value, (int, float)) or value is None:
            flat[name] = value
    return flat
