"""The leaderboard's figures (PNG, written atomically through the report's writer).

matplotlib is imported inside each function: it is slow to import and only the bench draws.
"""

from __future__ import annotations

from pathlib import Path

from obliviate.eval.report import save_figure

FAMILIARITY = (("familiarity_completion", "completion-based"), ("familiarity_probability", "probability-based"))


def _save(fig, path: Path) -> Path:
    """Write a PNG atomically and release the pyplot figure."""
    import matplotlib.pyplot as plt

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
    return _save(fig, path)


def relearn_plot(attack_results: dict[str, dict], path: Path, metric: str = "prob") -> Path | None:
    """Recovery curves (held-apart forget answer probability vs relearning steps): every
    method's unlearned model, plus the retain and full baselines (drawn once, dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    colours, markers = plt.get_cmap("tab20").colors, "osD^v"
    baseline_colour = {"full": "black", "retain": "green"}   # as in the familiarity plot
    first = next(iter(attack_results), None)
    drawn, index = False, 0
    for method, result in attack_results.items():
        curves = result.get("attacks", {}).get("relearn", {}).get("curves", {})
        for role, points in curves.items():
            if role != "unlearned" and method != first:
                continue
            xs = [p["k"] for p in points if p.get(metric) is not None]
            ys = [p[metric] for p in points if p.get(metric) is not None]
            if not xs:
                continue
            if role == "unlearned":
                # colour and marker together tell up to 100 curves apart (tab20 alone repeats after 20)
                ax.plot(xs, ys, marker=markers[index % len(markers)], color=colours[index % len(colours)],
                        label=method, linestyle="-")
                index += 1
            else:
                ax.plot(xs, ys, marker="o", color=baseline_colour.get(role, "gray"), label=f"{role} model",
                        linestyle="--", linewidth=2)
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("relearning steps on the other half of the forget set")
    ax.set_ylabel(f"held-apart forget answers: {metric}")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))   # outside: the curves stay visible
    return _save(fig, path)


def familiarity_plot(curve: dict, path: Path) -> Path | None:
    """Both familiarities vs WHP fine-tuning steps, the full and saga-free levels as
    horizontal lines, the full evaluator's grade of the final model as a star."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    drawn = False
    for ax, (key, name) in zip(axes, FAMILIARITY):
        points = [p for p in curve["points"] if p.get(key) is not None]
        if not points:
            continue
        ax.plot([p["step"] for p in points], [p[key] for p in points], marker="o", label="WHP")
        for role, style, label in (("full", "--", "full model"), ("retain", ":", "retrained without the saga")):
            level = curve["levels"][role].get(key)
            if level is not None:
                ax.axhline(level, linestyle=style, color="gray" if role == "full" else "green", label=label)
        final = curve["final"].get(key)
        if curve.get("steps") is not None and final is not None:
            ax.scatter([curve["steps"]], [final], marker="*", s=150, color="red", zorder=3,
                       label="final model (full evaluator)")
        ax.set_xlabel("WHP fine-tuning steps")
        ax.set_ylabel(f"familiarity ({name})")
        ax.set_title(f"{name} familiarity with the saga")
        ax.legend(fontsize=7)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    return _save(fig, path)
