"""Small sweep of each post-hoc method's learning rate and steps on a run (default: the
tiny demo run), graded by the evaluator and the relearning attack against the retain model.
Chooses per method the setting with the highest forget quality among those keeping model
utility >= 95% of the full model's and retain unique accuracy >= 0.9 (ties: the smaller
relearning gap), and writes JSON + markdown.

    obliviate demo --preset tiny --run runs/demo
    python bench/sweep_methods.py --run runs/demo --out bench/results/sweep.json
"""

from __future__ import annotations

import argparse
import itertools
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
KEYS = ("forget_quality", "forget_quality_unique", "model_utility", "forget_unique_accuracy",
        "forget_shared_accuracy", "retain_unique_accuracy")
RETAIN_ACCURACY_BAR = 0.9   # a default must keep retained unique facts
UTILITY_BAR = 0.95          # ... and this share of the full model's utility


def relearn_curve(model, tokenizer, world, forget: str) -> list[dict]:
    """The relearning attack's accuracy curve of one model (the leaderboard's settings)."""
    from obliviate.attacks.runner import run_attacks

    return run_attacks(model, tokenizer, world, forget, "relearn")["attacks"]["relearn"]["curves"]["unlearned"]


def relearning_gap(curve: list[dict], retain_curve: list[dict]) -> float:
    """The mean accuracy gap to the retrained model over the relearning steps (0: as the retrained model)."""
    from obliviate.attacks.relearn import relearning_gap as gap

    return gap({"unlearned": curve, "retain": retain_curve}, "accuracy")["area"]


def choose(rows: list[dict], full_summary: dict) -> dict | None:
    """Highest forget quality among the settings that keep utility and retained facts;
    ties (forget quality saturates at the KS test's discrete p-values) go to the smaller
    relearning gap."""
    keeping = [r for r in rows if r["model_utility"] >= UTILITY_BAR * full_summary["model_utility"]
               and r["retain_unique_accuracy"] >= RETAIN_ACCURACY_BAR]
    gap = lambda r: r["relearn_gap"] if r["relearn_gap"] is not None else float("inf")  # noqa: E731
    return max(keeping, key=lambda r: (r["forget_quality"], -gap(r)), default=None)


def main(argv=None) -> None:
    from obliviate.eval.evaluator import EvalConfig, evaluate
    from obliviate.io import atomic_write_json, atomic_write_text
    from obliviate.models.loading import load_model_and_tokenizer
    from obliviate.workflows.evaluate import reference_for
    from obliviate.workflows.run_dir import RunDir
    from obliviate.workflows.unlearn import run_unlearning
    from obliviate.world import load_world

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--forget", default="forget10")
    parser.add_argument("--methods", default=",".join(GRID))
    parser.add_argument("--no-relearn", action="store_true", help="skip the relearning attack per setting")
    parser.add_argument("--out", type=Path, default=Path("bench/results/sweep.json"))
    args = parser.parse_args(argv)

    run = RunDir.open(args.run, create=False)
    world = load_world(run.world_dir)
    retain_model, tokenizer = load_model_and_tokenizer(run.retain_model(args.forget))
    reference = reference_for(run.retain_model(args.forget), world, args.forget, EvalConfig())
    retain_curve = None if args.no_relearn else relearn_curve(retain_model, tokenizer, world, args.forget)
    full, _ = load_model_and_tokenizer(run.full_model)
    full_summary = evaluate(full, tokenizer, world, args.forget, reference=reference)["summary"]
    full_gap = None if args.no_relearn else relearning_gap(relearn_curve(full, tokenizer, world, args.forget),
                                                           retain_curve)
    rows, best = [], {}
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
        chosen = choose(method_rows, full_summary)
        if chosen is not None:
            best[method] = chosen
    result = {"run": str(args.run), "forget": args.forget,
              "full": {**{k: full_summary[k] for k in KEYS}, "relearn_gap": full_gap},
              "bars": {"utility_share": UTILITY_BAR, "retain_unique_accuracy": RETAIN_ACCURACY_BAR},
              "rows": rows, "best": best}
    atomic_write_json(args.out, result)
    lines = ["| method | settings | FQ | FQ uniq | MU | forget uniq | forget shared | retain uniq | relearn gap | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mark = " **" if best.get(r["method"]) is r else ""
        settings = ", ".join(f"{k} {v}" for k, v in r["settings"].items())
        gap = "-" if r["relearn_gap"] is None else f"{r['relearn_gap']:.2f}"
        lines.append(f"| {r['method']}{mark} | {settings} | {r['forget_quality']:.2e} | {r['forget_quality_unique']:.2e} | "
                     f"{r['model_utility']:.3f} | {r['forget_unique_accuracy']:.2f} | {r['forget_shared_accuracy']:.2f} | "
                     f"{r['retain_unique_accuracy']:.2f} | {gap} | {r['seconds']} |")
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
