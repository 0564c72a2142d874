"""Small sweep of each post-hoc method's learning rate and steps on a run (default: the
tiny demo run), graded by the evaluator and the relearning attack against the retain model.
Chooses per method, among the settings that forget (forget unique accuracy <= 0.2) and keep
model utility >= 95% of the full model's and retain unique accuracy >= 0.9, the one with the
smallest relearning gap (ties: the higher forget quality), and writes JSON + markdown.
(The relearning gap, not forget quality, decides: on tiny's forget10, 40 items, the KS test's
p-value is too coarse and noisy to rank settings; the full model itself scores 0.11.)

    obliviate demo --preset tiny --run runs/demo
    python bench/sweep_methods.py --run runs/demo --out bench/results/sweep.json
    python bench/sweep_methods.py --rechoose --out bench/results/sweep.json   # re-apply the rule
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

GRID = {
    "grad_ascent": {"lr": ["1e-4", "3e-4", "1e-3"], "max_steps": ["20", "40"]},
    "grad_diff": {"lr": ["2e-4", "5e-4", "1e-3", "2e-3"], "max_steps": ["40", "80"]},
    "npo": {"lr": ["1e-4", "3e-4", "1e-3"], "max_steps": ["40", "80"]},
    "simnpo": {"lr": ["2e-4", "5e-4", "1e-3", "2e-3"], "max_steps": ["40", "80"]},
    "rmu": {"lr": ["3e-3", "1e-2"], "max_steps": ["40", "80"]},
    "idk_dpo": {"lr": ["5e-4", "1e-3", "2e-3"], "max_steps": ["40", "80"]},
    "wga": {"lr": ["5e-4", "1e-3", "2e-3"], "max_steps": ["40", "80"]},
    "satimp": {"lr": ["5e-4", "1e-3", "2e-3"], "max_steps": ["40", "80"]},
    "undial": {"lr": ["3e-4", "1e-3", "2e-3"], "max_steps": ["40", "80"]},
    "ce_u": {"lr": ["3e-4", "1e-3", "2e-3"], "max_steps": ["20", "40", "80"]},
    "pdu": {"lr": ["5e-4", "1e-3", "2e-3"], "max_steps": ["40", "80"]},
    "altpo": {"lr": ["5e-4", "1e-3", "2e-3"], "max_steps": ["40", "80"]},
    "sam": {"lr": ["5e-4", "1e-3", "2e-3"], "max_steps": ["40", "80"]},
    "repnoise": {"lr": ["5e-4", "1e-3", "2e-3"], "max_steps": ["40", "60"]},
    "undo": {"alpha": ["0.1", "0.3", "0.5"]},   # its base method (npo) keeps its own tuned settings
}
# the choice rule's bars, recorded in the JSON beside the rows they were applied to: a default must
# forget the split's unique facts, keep retained unique facts and this share of the full model's utility
BARS = {"utility_share": 0.95, "retain_unique_accuracy": 0.9, "forget_unique_accuracy": 0.2}
KEYS = ("forget_quality", "forget_quality_unique", "model_utility", "forget_unique_accuracy",
        "forget_shared_accuracy", "retain_unique_accuracy")


def relearn_curve(model, tokenizer, world, forget: str) -> list[dict]:
    """The relearning attack's accuracy curve of one model (the leaderboard's settings)."""
    from obliviate.attacks.runner import run_attacks

    return run_attacks(model, tokenizer, world, forget, "relearn")["attacks"]["relearn"]["curves"]["unlearned"]


def relearning_gap(curve: list[dict], retain_curve: list[dict]) -> float:
    """The mean accuracy gap to the retrained model over the relearning steps (0: as the retrained model)."""
    from obliviate.attacks.relearn import relearning_gap as gap

    return gap({"unlearned": curve, "retain": retain_curve}, "accuracy")["area"]


def choose(rows: list[dict], full_summary: dict) -> dict | None:
    """The smallest relearning gap among the settings that forget and keep utility and
    retained facts; ties go to the higher forget quality."""
    keeping = [r for r in rows if r["model_utility"] >= BARS["utility_share"] * full_summary["model_utility"]
               and r["retain_unique_accuracy"] >= BARS["retain_unique_accuracy"]
               and r["forget_unique_accuracy"] <= BARS["forget_unique_accuracy"]]
    gap = lambda r: r["relearn_gap"] if r["relearn_gap"] is not None else float("inf")  # noqa: E731
    return min(keeping, key=lambda r: (gap(r), -r["forget_quality"]), default=None)


def choose_per_method(rows: list[dict], full_summary: dict) -> dict[str, dict]:
    """``choose`` for each method of ``rows``: method -> its chosen row (methods with none left out)."""
    chosen = {m: choose([r for r in rows if r["method"] == m], full_summary) for m in dict.fromkeys(r["method"] for r in rows)}
    return {m: row for m, row in chosen.items() if row is not None}


def write_sweep(out: Path, result: dict) -> None:
    from obliviate.io import atomic_write_json, atomic_write_text

    atomic_write_json(out, result)
    atomic_write_text(out.with_suffix(".md"), sweep_markdown(result))


def main(argv=None) -> None:
    from obliviate.eval.evaluator import EvalConfig, evaluate
    from obliviate.models.loading import load_model_and_tokenizer
    from obliviate.workflows.evaluate import reference_for
    from obliviate.workflows.run_dir import RunDir
    from obliviate.workflows.unlearn import run_unlearning
    from obliviate.world import load_world

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path)
    parser.add_argument("--rechoose", action="store_true",
                        help="re-apply the choice rule to the rows of an existing --out JSON (no training)")
    parser.add_argument("--forget", default="forget10")
    parser.add_argument("--methods", default=",".join(GRID), help=f"comma-separated, of: {', '.join(GRID)}")
    parser.add_argument("--no-relearn", action="store_true", help="skip the relearning attack per setting")
    parser.add_argument("--out", type=Path, default=Path("bench/results/sweep.json"))
    args = parser.parse_args(argv)

    if args.rechoose:
        result = json.loads(args.out.read_text())
        write_sweep(args.out, {**result, "bars": BARS, "best": choose_per_method(result["rows"], result["full"])})
        return
    if args.run is None:
        parser.error("--run is required (or --rechoose)")
    unknown = sorted(set(args.methods.split(",")) - set(GRID))
    if unknown:
        parser.error(f"unknown methods {', '.join(unknown)}; valid: {', '.join(GRID)}")
    run = RunDir.open(args.run, create=False)
    world = load_world(run.world_dir)
    retain_model, tokenizer = load_model_and_tokenizer(run.retain_model(args.forget))
    reference = reference_for(run.retain_model(args.forget), world, args.forget, EvalConfig())
    retain_curve = None if args.no_relearn else relearn_curve(retain_model, tokenizer, world, args.forget)
    full, _ = load_model_and_tokenizer(run.full_model)
    full_summary = evaluate(full, tokenizer, world, args.forget, reference=reference)["summary"]
    full_gap = None if args.no_relearn else relearning_gap(relearn_curve(full, tokenizer, world, args.forget),
                                                           retain_curve)
    rows = []
    for method in args.methods.split(","):
        grid = GRID[method]
        method_rows = []
        for values in itertools.product(*grid.values()):
            overrides = dict(zip(grid, values))
            out = run.model_dir(f"sweep-{method}")
            started = time.perf_counter()
            run_unlearning(method, run.full_model, run.world_dir, args.forget, out,
                           overrides={**overrides, "progress": "false"}, evaluate=False)
            seconds = time.perf_counter() - started
            model, _ = load_model_and_tokenizer(out)
            summary = evaluate(model, tokenizer, world, args.forget, reference=reference)["summary"]
            gap = None if args.no_relearn else relearning_gap(relearn_curve(model, tokenizer, world, args.forget),
                                                              retain_curve)
            row = {"method": method, "settings": overrides, "seconds": round(seconds, 2),
                   **{k: summary[k] for k in KEYS}, "relearn_gap": gap}
            method_rows.append(row)
            print(row, flush=True)
        rows += method_rows
        # written after every method: a sweep cut short keeps what it measured
        result = {"run": str(args.run), "forget": args.forget, "command": " ".join(["python", *sys.argv]),
                  "full": {**{k: full_summary[k] for k in KEYS}, "relearn_gap": full_gap},
                  "bars": BARS,
                  "rows": rows, "best": choose_per_method(rows, full_summary)}
        write_sweep(args.out, result)


def sweep_markdown(result: dict) -> str:
    full, best = result["full"], result["best"]
    full_gap = "-" if full["relearn_gap"] is None else f"{full['relearn_gap']:.2f}"
    lines = [f"Produced by `{result['command']}`. Full model: FQ {full['forget_quality']:.2e}, "
             f"MU {full['model_utility']:.3f}, forget/retain unique accuracy {full['forget_unique_accuracy']:.2f}/"
             f"{full['retain_unique_accuracy']:.2f}, relearn gap {full_gap}. ** marks the setting chosen: the "
             f"smallest relearn gap with forget unique accuracy <= {BARS['forget_unique_accuracy']}, MU >= "
             f"{BARS['utility_share']} x the full model's and retain unique accuracy >= "
             f"{BARS['retain_unique_accuracy']} (ties: the higher FQ).", "",
             "| method | settings | FQ | FQ uniq | MU | forget uniq | forget shared | retain uniq | relearn gap | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        mark = " **" if best.get(r["method"]) is r else ""
        settings = ", ".join(f"{k} {v}" for k, v in r["settings"].items())
        gap = "-" if r["relearn_gap"] is None else f"{r['relearn_gap']:.2f}"
        lines.append(f"| {r['method']}{mark} | {settings} | {r['forget_quality']:.2e} | {r['forget_quality_unique']:.2e} | "
                     f"{r['model_utility']:.3f} | {r['forget_unique_accuracy']:.2f} | {r['forget_shared_accuracy']:.2f} | "
                     f"{r['retain_unique_accuracy']:.2f} | {gap} | {r['seconds']} |")
    missing = [m for m in dict.fromkeys(r["method"] for r in result["rows"]) if m not in best]
    if missing:
        lines += ["", f"No setting met the bars for: {', '.join(missing)} (their defaults stay as they were)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
