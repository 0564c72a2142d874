"""Small sweep of each post-hoc method's learning rate and steps on a run (default: the
tiny demo run), graded by the evaluator against the retain model. Chooses per method the
setting with the highest forget quality among those keeping model utility >= 95% of the
full model's, and writes JSON + markdown.

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
}
KEYS = ("forget_quality", "model_utility", "forget_unique_accuracy", "forget_shared_accuracy", "retain_unique_accuracy")


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
    parser.add_argument("--out", type=Path, default=Path("bench/results/sweep.json"))
    args = parser.parse_args(argv)

    run = RunDir.open(args.run, create=False)
    world = load_world(run.world_dir)
    reference = reference_for(run.retain_model(args.forget), world, args.forget, EvalConfig())
    full, tokenizer = load_model_and_tokenizer(run.full_model)
    full_summary = evaluate(full, tokenizer, world, args.forget, reference=reference)["summary"]
    rows, best = [], {}
    for method in args.methods.split(","):
        grid = GRID[method]
        for values in itertools.product(*grid.values()):
            overrides = dict(zip(grid, values))
            out = run.model_dir(f"sweep-{method}")
            started = time.perf_counter()
            run_unlearning(method, run.full_model, run.world_dir, args.forget, out, overrides=overrides, evaluate=False)
            seconds = time.perf_counter() - started
            model, _ = load_model_and_tokenizer(out)
            summary = evaluate(model, tokenizer, world, args.forget, reference=reference)["summary"]
            row = {"method": method, **overrides, "seconds": round(seconds, 2), **{k: summary[k] for k in KEYS}}
            rows.append(row)
            print(row, flush=True)
            keeps = summary["model_utility"] >= 0.95 * full_summary["model_utility"]
            if keeps and (method not in best or row["forget_quality"] > best[method]["forget_quality"]):
                best[method] = row
    result = {"run": str(args.run), "forget": args.forget, "full": {k: full_summary[k] for k in KEYS},
              "rows": rows, "best": best}
    atomic_write_json(args.out, result)
    lines = ["| method | lr | steps | FQ | MU | forget uniq | forget shared | retain uniq | seconds |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mark = " **" if best.get(r["method"]) is r else ""
        lines.append(f"| {r['method']}{mark} | {r['lr']} | {r['max_steps']} | {r['forget_quality']:.2e} | "
                     f"{r['model_utility']:.3f} | {r['forget_unique_accuracy']:.2f} | {r['forget_shared_accuracy']:.2f} | "
                     f"{r['retain_unique_accuracy']:.2f} | {r['seconds']} |")
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
