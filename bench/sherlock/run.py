"""The whole benchmark: world, trained models, unlearning runs, the measurement of every model, and
the result (``OUT/sherlock.json`` and ``OUT/sherlock.md``)."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

import tokenizers
import torch
import transformers

import obliviate
from obliviate.models.loading import load_model_and_tokenizer, read_run_config
from obliviate.workflows.run_dir import RunDir
from obliviate.world import load_world

from .config import REPO, SherlockConfig, method_runs
from .measure import measure, summary_row
from .probes import load_probes
from .report import write_results
from .training import train_models
from .unlearning import unlearn
from .world import build_world, find_data, held_out_docs


def versions() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
            "obliviate": obliviate.__version__, "platform": platform.platform(),
            "cpu_count": os.cpu_count()}


def measure_models(config: SherlockConfig, probes, held_out: dict[str, list[dict]], unlearned: dict) -> dict:
    """The measurements of ``full``, ``retain`` and every unlearned model, by name."""
    entities = json.loads(config.anchors.read_text()).keys()
    run = RunDir.open(config.run)
    models = {"full": run.full_model, "retain": run.retain_model("forget")}
    models.update({name: config.run / "models" / name for name in unlearned})
    metrics = {}
    for name, path in models.items():
        model, tokenizer = load_model_and_tokenizer(path)
        metrics[name] = measure(model, tokenizer, probes, held_out, list(entities), config.max_new_tokens)
        row = summary_row(metrics[name])
        print(f"[measure] {name}: " + ", ".join(f"{k}={v:.3f}" for k, v in row.items() if v is not None)
              + f" ({metrics[name]['seconds']}s)", flush=True)
        del model
    return metrics


def portable(path: Path) -> str:
    """A path relative to the repository where possible (results must not hold machine paths)."""
    try:
        return os.path.relpath(path.resolve(), REPO)
    except ValueError:
        return str(path)


def make_portable(result: dict) -> None:
    """Machine paths in ``result`` (its config, the runs' overrides and method configs) made relative."""
    for key in ("data", "run", "out", "probes", "anchors"):
        result["config"][key] = portable(Path(result["config"][key]))
    for entry in [*result["method_runs"], *result["models"].values()]:
        for key in ("overrides", "method_config"):
            if entry.get(key):
                entry[key] = {k: portable(Path(v)) if isinstance(v, str) and os.path.isabs(v) else v
                              for k, v in entry[key].items()}


def run_bench(config: SherlockConfig) -> dict | None:
    texts = find_data(config.data)
    if texts is None:
        return None
    torch.set_num_threads(config.threads)
    wall, cpu = time.perf_counter(), time.process_time()
    timings: dict[str, float] = {}

    started = time.perf_counter()
    config.run.mkdir(parents=True, exist_ok=True)
    world_src = build_world(texts, config.probes, config.run, config)
    timings["world"] = round(time.perf_counter() - started, 1)
    print(f"[world] {world_src} ({timings['world']}s)", flush=True)

    trained = train_models(world_src, config)
    unlearned = unlearn(method_runs(config), config)

    world = load_world(config.run / "world")
    probes = load_probes(config.probes)
    held_out = held_out_docs(world)
    metrics = measure_models(config, probes, held_out, unlearned)

    run = RunDir.open(config.run)
    for name in unlearned:  # every setting of each method, defaults included
        unlearned[name]["method_config"] = read_run_config(run.model_dir(name)).get("config")
    counts = json.loads((config.run / "world" / "world.json").read_text())["counts"]
    holdout_names = [s["name"] for s in world.sources if not s.get("trained", True)]
    result = {
        "summary": {name: summary_row(m) for name, m in metrics.items()},
        "models": {"full": trained["full"], "retain": trained["retain"], **unlearned},
        "measurements": metrics,
        "world": {"counts": counts, "holdout_sources": holdout_names,
                  "held_out_documents": {k: len(v) for k, v in held_out.items()},
                  "probes": [asdict(p) for p in probes]},
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "method_runs": [asdict(r) for r in method_runs(config)],
        "timings": {**timings, "wall_seconds": round(time.perf_counter() - wall, 1),
                    "cpu_seconds": round(time.process_time() - cpu, 1)},
        "versions": versions(),
        "command": " ".join(["python bench/bench_sherlock.py", *sys.argv[1:]]),
    }
    make_portable(result)
    # what the whole benchmark costs, counting reused models at the time they took when they ran
    steps = [m for m in result["models"].values()] + list(metrics.values())
    result["timings"]["benchmark_seconds"] = round(timings["world"] + sum(m.get("seconds") or 0 for m in steps), 1)
    result["timings"]["benchmark_cpu_seconds"] = round(sum(m.get("cpu_seconds") or 0 for m in steps), 1)
    write_results(result, config.out)
    return result
