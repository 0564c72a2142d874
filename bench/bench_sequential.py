"""Sequential deletions (issue 18 item 6; MUSE's "sustainability" setting): N deletion requests one
after another, one source each, against the switch of a sink model and post-hoc methods applied
again and again.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python bench/bench_sequential.py [--preset tiny] [--run DIR]
        [--requests 10] [--methods npo,grad_diff] [--modes route,all] [--out docs/results/sequential]

The world (``make_world``: ``obliviate world --preset P --seed S``) is copied with one more split,
``sequential``: the N deleted sources in request order (the world's forget10 sources, then the first
retain sources by id). The run trains (``train_run``: ``obliviate train --forget sequential``, cached)
the dense full model, the dense model retrained without all N sources (``models/retain-sequential``,
the gold standard after the last request) and the sink model (``--arch sinks --only full``).

Request k deletes source s_k:

- ``switch-<mode>``: the native method (``SwitchMethod``) on the sink model, switched off cumulatively
  (after request k, s_1..s_k are off); ``route`` is the switch's default mode (each query runs its
  nearest source's sinks), ``all`` runs every sink of every surviving source, so each deletion also
  switches off the units s_k shares with survivors (~1 - (1 - p_mem)^k of a survivor's sinks).
- post-hoc methods (``npo``, ``grad_diff`` with the registry's defaults): request k starts from the model
  request k-1 produced and forgets s_k only; retain set = the trained author sources not deleted yet
  (the retain split and the pending requests); the frozen reference (NPO) is the starting model of
  that request, as ``obliviate unlearn`` on the previous output would use.

After each request the project's evaluator (``eval.evaluator.evaluate``; gradient-norm MIA off) grades
the model on an in-memory view of the world whose forget split is s_1..s_k and whose retain split is
the retain split minus the N sequence sources (never deleted): greedy exact-answer accuracy of the
unique facts of s_1..s_k (cumulative) and of s_k alone (newest), of the shared facts of s_1..s_k
(must survive), of the never-deleted sources, model utility, and forget quality (KS test of the truth
ratios) against ``retain-sequential``. That model never saw s_{k+1}..s_N either, so for k < N it
stands in for the per-request retrained model (too costly): exact at k = N, an approximation before.
Its own figures are in the rows ``retain (gold)``.

Writes ``sequential.json`` and ``sequential.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import shutil
import time
from pathlib import Path

import torch

from obliviate.config import apply_overrides, config_to_dict
from obliviate.eval.config import EvalConfig
from obliviate.eval.evaluator import evaluate
from obliviate.io import atomic_write_json, atomic_write_text
from obliviate.methods.registry import UnlearnTask, get_method
from obliviate.models.loading import load_model_and_tokenizer
from obliviate.workflows.run_dir import RunDir
from obliviate.workflows.train import make_world, train_run
from obliviate.world.loader import World, load_world

SPLIT = "sequential"
SUMMARY = ("forget_unique_accuracy", "forget_shared_accuracy", "retain_unique_accuracy",
           "retain_shared_accuracy", "model_utility", "forget_quality", "forget_quality_unique",
           "forget_truth_ratio", "general_accuracy")


def sequence_sources(world: World, n: int) -> list[int]:
    """The deleted sources in request order: forget10's (by id), then the retain split's first (by id)."""
    first = sorted(world.split_sources("forget10")) if "forget10" in world.splits else []
    rest = [s for s in sorted(world.split_sources("retain")) if s not in first]
    order = (first + rest)[:n]
    if len(order) < n:
        raise SystemExit(f"the world has only {len(order)} author sources to delete, not {n}")
    return order


def prepare_world(preset: str, seed: int, run: Path, n: int) -> Path:
    """RUN/world-generated (the embedded world) and RUN/world-sequential: a copy with the ``sequential``
    split (the deletion order); returns the copy, which the run trains on."""
    generated = run / "world-generated"
    if not (generated / "splits.json").is_file():
        make_world(preset, seed, generated)
    world = load_world(generated)
    order = sequence_sources(world, n)
    copy = run / "world-sequential"
    splits = {**world.splits, SPLIT: order}
    if not (copy / "splits.json").is_file() or json.loads((copy / "splits.json").read_text()) != splits:
        tmp = run / "world-sequential.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(generated, tmp)
        (tmp / "splits.json").write_text(json.dumps(splits, indent=1) + "\n")
        shutil.rmtree(copy, ignore_errors=True)
        tmp.rename(copy)
    return copy


def evaluation_world(world: World, order: list[int]) -> World:
    """The world as the evaluator sees it: splits ``deleted-k`` (s_1..s_k), ``request-k`` (s_k) and
    ``retain`` without any sequence source (the sources never deleted). In memory only."""
    splits = dict(world.splits)
    splits["retain"] = [s for s in world.splits["retain"] if s not in set(order)]
    for k in range(1, len(order) + 1):
        splits[f"deleted-{k}"] = order[:k]
        splits[f"request-{k}"] = [order[k - 1]]
    return dataclasses.replace(world, splits=splits)


def request_task(world: World, order: list[int], k: int) -> UnlearnTask:
    """Request k: forget s_k; keep the trained author sources not deleted yet."""
    forget = {order[k - 1]}
    keep = (set(world.splits["retain"]) | set(order[k:])) - set(order[:k])
    return UnlearnTask(
        world=world, forget=f"request-{k}", forget_sources=forget, retain_sources=keep,
        forget_items=[q for q in world.qa if q["source_id"] in forget],
        retain_items=[q for q in world.qa if q["source_id"] in keep],
        forget_docs=world.docs_for(forget), retain_docs=world.docs_for(keep))


def grade(model, tokenizer, world: World, order: list[int], k: int, reference: dict | None,
          config: EvalConfig) -> tuple[dict, dict]:
    """The evaluation after request k (k = 0: before any, on all N sources) and the row figures."""
    split = f"deleted-{k or len(order)}"
    started = time.perf_counter()
    result = evaluate(model, tokenizer, world, split, reference=reference, config=config)
    summary = result["summary"]
    row = {key: summary.get(key) for key in SUMMARY}
    row["eval_seconds"] = time.perf_counter() - started
    source_of = {str(q["id"]): q["source_id"] for q in world.qa}
    forget_rows = result["per_item"]["qa"]["forget"]
    newest = order[k - 1] if k else None
    unique = [r for i, r in forget_rows.items() if r["kind"] == "unique" and source_of[str(i)] == newest]
    row["newest_unique_accuracy"] = sum(float(r["correct"]) for r in unique) / len(unique) if unique else None
    # per deleted source: does an earlier deletion come back, or a later one leak onto it
    row["per_source_unique_accuracy"] = {}
    for source in order[:k or len(order)]:
        rows = [r for i, r in forget_rows.items() if r["kind"] == "unique" and source_of[str(i)] == source]
        row["per_source_unique_accuracy"][str(source)] = sum(float(r["correct"]) for r in rows) / len(rows)
    return result, row


def build_models(args, run: RunDir) -> tuple[dict[str, Path], dict[str, dict]]:
    """Train (or reuse) the dense full, dense retain-sequential and sink full models; their paths and
    training (seconds, reused)."""
    world_dir = prepare_world(args.preset, args.seed, run.root, args.requests)
    overrides = dict(kv.split("=", 1) for kv in args.train_set)
    started = time.perf_counter()
    dense = train_run(world_dir, run.root, forget=SPLIT, overrides=overrides, progress=False)
    sinks = train_run(world_dir, run.root, forget=SPLIT, arch="sinks", which=("full",), overrides=overrides,
                      progress=False)
    print(f"models ready in {time.perf_counter() - started:.0f} s", flush=True)
    results = {"full": dense["full"], "retain": dense["retain"], "sinks": sinks["full"]}
    return ({k: r.path for k, r in results.items()},
            {k: {"seconds": r.seconds, "reused": r.reused, "steps": r.steps} for k, r in results.items()})


def run_switch(mode: str, path: Path, world: World, order: list[int], references: list, config: EvalConfig,
               log_rows: list) -> None:
    model, tokenizer = load_model_and_tokenizer(path)
    method = get_method("switch")
    switch_config = apply_overrides(method.config_class(), {"inference_mode": mode})
    name = f"switch-{mode}"
    model.set_inference_mode(mode)
    _, row = grade(model, tokenizer, world, order, 0, references[0], config)
    log_rows.append({"method": name, "request": 0, "source": None, "unlearn_seconds": 0.0, **row})
    print(json.dumps(log_rows[-1] | {"per_source_unique_accuracy": None}), flush=True)
    for k in range(1, len(order) + 1):
        outcome = method(switch_config).run(model, tokenizer, request_task(world, order, k))
        model = outcome.model
        _, row = grade(model, tokenizer, world, order, k, references[k], config)
        log_rows.append({"method": name, "request": k, "source": order[k - 1], "unlearn_seconds": outcome.seconds,
                         "switch_seconds": outcome.report["switch_seconds"], "forgotten": list(model.forgotten),
                         **row})
        print(json.dumps(log_rows[-1] | {"per_source_unique_accuracy": None}), flush=True)


def run_posthoc(name: str, path: Path, world: World, order: list[int], references: list, config: EvalConfig,
                overrides: dict, log_rows: list) -> dict:
    model, tokenizer = load_model_and_tokenizer(path)
    method = get_method(name)
    method_config = apply_overrides(method.config_class(), {"progress": False, **overrides})
    _, row = grade(model, tokenizer, world, order, 0, references[0], config)
    log_rows.append({"method": name, "request": 0, "source": None, "unlearn_seconds": 0.0, **row})
    print(json.dumps(log_rows[-1] | {"per_source_unique_accuracy": None}), flush=True)
    for k in range(1, len(order) + 1):
        outcome = method(method_config).run(model, tokenizer, request_task(world, order, k))
        model = outcome.model
        _, row = grade(model, tokenizer, world, order, k, references[k], config)
        log_rows.append({"method": name, "request": k, "source": order[k - 1], "unlearn_seconds": outcome.seconds,
                         "steps": outcome.steps, **row})
        print(json.dumps(log_rows[-1] | {"per_source_unique_accuracy": None}), flush=True)
    return config_to_dict(method_config)


def sequence_run(world: World, order: list[int], models: dict[str, Path], methods=("npo", "grad_diff"),
                 modes=("route", "all"), overrides: dict | None = None,
                 config: EvalConfig = EvalConfig(mia_gradnorm=False)) -> tuple[list[dict], dict]:
    """Every row: the retain model (``models["retain"]``, never saw ``order``) per request, then each
    switch mode on ``models["sinks"]`` and each post-hoc method from ``models["full"]``, requests
    0..N. Returns (rows, the post-hoc methods' configs)."""
    view = evaluation_world(world, order)
    retain, tokenizer = load_model_and_tokenizer(models["retain"])
    references, rows = [], []
    for k in range(len(order) + 1):
        result, row = grade(retain, tokenizer, view, order, k, None, config)
        references.append(result)
        rows.append({"method": "retain (gold)", "request": k, "source": order[k - 1] if k else None, **row})
    del retain
    print(f"retain reference: {json.dumps(rows[-1] | {'per_source_unique_accuracy': None})}", flush=True)
    for mode in modes:
        run_switch(mode, models["sinks"], view, order, references, config, rows)
    method_configs = {name: run_posthoc(name, models["full"], view, order, references, config,
                                        dict(overrides or {}), rows) for name in methods}
    return rows, method_configs


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value != value:
        return "nan"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def fq(value) -> str:
    return "-" if value is None else (f"{value:.2g}" if value < 0.01 else f"{value:.2f}")


def markdown(result: dict) -> str:
    s = result["setup"]
    n = len(s["order"])
    lines = [f"# Sequential deletions: {n} requests, one source each ({s['preset']} world, seed {s['seed']})", "",
             f"Command: `{s['command']}` ({result['seconds'] / 60:.1f} min on {s['threads']} CPU thread(s), "
             f"models {'trained' if s['trained_now'] else 'reused'}; {platform.machine()}).", "",
             f"Deletion order (source ids): {', '.join(map(str, s['order']))} (the world's forget10 sources, then "
             f"the first retain sources by id). Never-deleted sources: {s['never_deleted']} authors.", "",
             "Columns: greedy exact-answer accuracy of the unique facts of every source deleted so far (cumulative) "
             "and of the source just deleted (newest); shared facts of the deleted sources (must survive); unique "
             "and shared facts of the never-deleted sources (retain); model utility (MU); forget quality (FQ, KS "
             "p-value of the truth ratios over the deleted sources' items) against `retain-sequential`, the dense "
             f"model retrained without all {n} sources: exact at request {n}, an approximation before (the "
             "per-request retrained model would also know the pending sources, which these items are not "
             "about); seconds of the request (the switch: the whole `SwitchMethod.run`; post-hoc: the training). "
             "Request 0 is the starting model, graded on all "
             f"{n} sources.", "",
             "| request | method | forget unique (cum.) | newest | forget shared | retain unique | retain shared "
             "| MU | FQ | seconds |", "|---|---|---|---|---|---|---|---|---|---|"]
    methods = list(dict.fromkeys(r["method"] for r in result["rows"]))
    by = {(r["method"], r["request"]): r for r in result["rows"]}
    for k in range(n + 1):
        for m in methods:
            r = by.get((m, k))
            if r is None:
                continue
            secs = "-" if m == "retain (gold)" else (f"{r['unlearn_seconds'] * 1e3:.1f} ms"
                                                      if m.startswith("switch") else f"{r['unlearn_seconds']:.1f}")
            lines.append(f"| {k} | {m} | {fmt(r['forget_unique_accuracy'])} | {fmt(r['newest_unique_accuracy'])} | "
                         f"{fmt(r['forget_shared_accuracy'])} | {fmt(r['retain_unique_accuracy'])} | "
                         f"{fmt(r['retain_shared_accuracy'])} | {fmt(r['model_utility'])} | "
                         f"{fq(r['forget_quality'])} | {secs} |")
    lines += ["", "## Findings", "", result.get("findings") or "(see sequential.json)", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run", type=Path, default=None, help="run directory (default /tmp/seq/<preset>)")
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--methods", default="npo,grad_diff", help="post-hoc methods, comma-separated")
    parser.add_argument("--modes", default="route,all", help="switch inference modes, comma-separated")
    parser.add_argument("--set", action="append", default=[], help="post-hoc method override key=value")
    parser.add_argument("--train-set", action="append", default=[], help="training override key=value")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("docs/results/sequential"))
    parser.add_argument("--render", action="store_true",
                        help="only rewrite sequential.md from sequential.json (e.g. after editing its findings)")
    args = parser.parse_args()
    if args.render:
        result = json.loads((args.out / "sequential.json").read_text())
        atomic_write_text(args.out / "sequential.md", markdown(result))
        return
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    run = RunDir.open(args.run or Path("/tmp/seq") / args.preset)

    models, training = build_models(args, run)
    trained_now = not all(t["reused"] for t in training.values())
    world = load_world(run.world_dir)
    order = list(world.splits[SPLIT])
    overrides = dict(kv.split("=", 1) for kv in args.set)
    methods, modes = tuple(filter(None, args.methods.split(","))), tuple(filter(None, args.modes.split(",")))
    rows, method_configs = sequence_run(world, order, models, methods, modes, overrides)
    view = evaluation_world(world, order)
    config = EvalConfig(mia_gradnorm=False)

    command = "OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python bench/bench_sequential.py" + "".join(
        f" --{k} {getattr(args, k)}" for k in ("preset", "seed", "requests", "methods", "modes")
        if getattr(args, k) != parser.get_default(k)) + "".join(f" --set {kv}" for kv in args.set)
    result = {
        "setup": {"preset": args.preset, "seed": args.seed, "order": order, "threads": args.threads,
                  "never_deleted": len(view.splits["retain"]), "methods": method_configs,
                  "modes": list(modes), "eval_config": config_to_dict(config), "command": command,
                  "models": {k: str(v) for k, v in models.items()}, "trained_now": trained_now, "training": training,
                  "torch": torch.__version__},
        "rows": rows,
        "seconds": time.perf_counter() - started,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    previous = args.out / "sequential.json"
    if previous.is_file():   # keep findings written by hand for the same setup
        old = json.loads(previous.read_text())
        if old.get("setup", {}).get("order") == order and old.get("findings"):
            result["findings"] = old["findings"]
    atomic_write_json(args.out / "sequential.json", result)
    atomic_write_text(args.out / "sequential.md", markdown(result))
    print(f"wrote {args.out / 'sequential.md'} in {result['seconds'] / 60:.1f} min")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
