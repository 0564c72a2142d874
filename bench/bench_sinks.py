"""Native unlearning with sinks (issue 6): does switching a split off match retraining?

    python bench/bench_sinks.py --run RUN [--forget forget10] [--threads 2] [--out RUN/bench/sinks]

Needs a run trained with both architectures (``obliviate train --run RUN --arch sinks``
and ``--arch dense``):

    RUN/world/                  the world
    RUN/models/full-sinks       sink model on every trained source (router fitted)
    RUN/models/retain-sinks     sink model retrained without the forget split (gold standard;
                                falls back to RUN/models/retain, the dense one)
    RUN/models/full             dense model of the same size and training config (optional:
                                held-out loss and throughput ratios need it)

Every condition is graded by the project's evaluator against the retain model:

- ``full``: the sink model, route mode, nothing forgotten (no oracle source id);
- ``switched``: ``switch`` method with its defaults: forget sources off, queries routed; a
  query whose nearest source is forgotten runs every surviving sink, unless a surviving
  source is nearly as close (``route_shared_ratio``: shared knowledge goes there);
- ``switched-fallback-backbone``: the same, but such queries run backbone-only;
- ``switched-nearest``: forgotten sources off, every query to its nearest surviving source;
- ``switched-backbone``: every query backbone-only;
- ``placebo``: as many random retain sources switched off instead (the control: it
  should change forget facts no more than retain facts);
- ``retain``: the gold standard itself.

Capability cost, in the same run: held-out loss (documents of never-trained sources)
of the sink model vs the dense model, training throughput (forward+backward tokens/s
measured here on the same batches, and the recorded training seconds), switch latency
vs retraining time. Writes ``sinks.json`` and ``sinks.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import torch

from obliviate.data.format import qa_prompt
from obliviate.errors import UserError
from obliviate.eval.evaluator import EvalConfig, RetainReference, evaluate
from obliviate.io import atomic_write_json, atomic_write_text
from obliviate.methods.registry import UnlearnTask
from obliviate.methods.switch import SwitchConfig, SwitchMethod
from obliviate.models.loading import load_model_and_tokenizer, read_run_config
from obliviate.world import load_world

CONDITION_ORDER = ("retain", "full", "switched", "switched-fallback-backbone", "switched-nearest", "switched-backbone",
                   "placebo")
TABLE_KEYS = ("forget_quality", "forget_unique_accuracy", "forget_shared_accuracy", "forget_inferred_accuracy",
              "retain_unique_accuracy", "retain_shared_accuracy", "retain_inferred_accuracy", "general_accuracy",
              "model_utility", "forget_truth_ratio", "privleak")


def _evaluate(model, tokenizer, world, forget, reference, batch_size: int) -> dict:
    started = time.perf_counter()
    result = evaluate(model, tokenizer, world, forget, reference=reference, config=EvalConfig(batch_size=batch_size))
    result["config"]["seconds"] = round(time.perf_counter() - started, 1)
    return result


def _task(world, forget: str, forget_sources: set[int]):
    retain = world.training_sources(None) - forget_sources
    return UnlearnTask(world=world, forget=forget, forget_sources=forget_sources, retain_sources=retain,
                       forget_items=[], retain_items=[], forget_docs=world.docs_for(forget_sources),
                       retain_docs=world.docs_for(retain))


@torch.no_grad()
def heldout_loss(model, tokenizer, texts: list[str], batch_size: int = 16, max_tokens: int = 512) -> float:
    """Mean NLL per predicted token over ``texts`` (BOS prepended, right-padded)."""
    encoded = [([tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else [])
               + tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    encoded = [ids[:max_tokens] for ids in encoded if len(ids) > 1]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    total, count = 0.0, 0
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start:start + batch_size]
        width = max(map(len, chunk))
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in chunk])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in chunk])
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
        total += float((nll * mask[:, 1:]).sum())
        count += int(mask[:, 1:].sum())
    return total / max(count, 1)


def training_throughput(model, tokenizer, texts: list[str], steps: int, batch_size: int,
                        source_ids: list[int] | None) -> float:
    """Tokens per second of forward+backward+AdamW steps on fixed batches (weights restored after)."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    encoded = [tokenizer(t, add_special_tokens=True)["input_ids"][:256] for t in texts[:batch_size]]
    width = max(map(len, encoded))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in encoded])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in encoded])
    labels = ids.masked_fill(mask == 0, -100)
    kwargs = {"source_ids": torch.tensor(source_ids[:len(encoded)])} if source_ids is not None else {}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    model.train()
    with torch.enable_grad():
        for step in range(steps + 1):
            if step == 1:                                   # first step warms up
                started = time.perf_counter()
            loss = model(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False, **kwargs).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    seconds = time.perf_counter() - started
    model.eval()
    model.load_state_dict(state)
    return steps * int(mask.sum()) / seconds


def switch_latency_ms(model, tokenizer, task, repeats: int = 20) -> float:
    times = []
    for _ in range(repeats):
        model.restore(model.forgotten)
        result = SwitchMethod().unlearn(model, tokenizer, task)
        times.append(result.report["switch_seconds"] * 1e3)
    return statistics.median(times)


def routing_accuracy(model, tokenizer, world) -> float:
    trained = world.trained_sources()
    items = [q for q in world.qa if q["kind"] == "unique" and q["source_id"] in trained]
    routes = model.route([qa_prompt(q["question"]) for q in items], tokenizer)
    return sum(r == q["source_id"] for r, q in zip(routes, items)) / max(len(items), 1)


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-2 and value != 0 else f"{value:.3f}"
    return str(value)


def checks(summaries: dict[str, dict], cost: dict) -> list[tuple[str, bool | None, str]]:
    """Issue 6's 'must show' list, each with pass/fail and the numbers behind it."""
    out: list[tuple[str, bool | None, str]] = []
    full, switched, placebo = summaries.get("full"), summaries.get("switched"), summaries.get("placebo")
    if switched and full:
        fq, fq_full = switched.get("forget_quality"), full.get("forget_quality")
        out.append(("forget quality of the switched model >= 0.05", None if fq is None else fq >= 0.05,
                    f"switched {_fmt(fq)}, full {_fmt(fq_full)}"))
        out.append(("forget quality of the full model < 0.05 (else the split cannot tell forgetting apart)",
                    None if fq_full is None else fq_full < 0.05, f"full {_fmt(fq_full)}"))
        for key in ("forget_shared_accuracy", "forget_inferred_accuracy", "retain_shared_accuracy",
                    "retain_inferred_accuracy", "general_accuracy", "retain_unique_accuracy"):
            a, b = switched.get(key), full.get(key)
            ok = None if a is None or b is None else a >= b - 0.02
            out.append((f"{key}: switched within 2 points of full", ok, f"switched {_fmt(a)}, full {_fmt(b)}"))
    if placebo and full:
        d_forget = abs((placebo.get("forget_unique_accuracy") or 0) - (full.get("forget_unique_accuracy") or 0))
        d_retain = abs((placebo.get("retain_unique_accuracy") or 0) - (full.get("retain_unique_accuracy") or 0))
        out.append(("placebo changes forget facts no more than retain facts", d_forget <= d_retain + 1e-9,
                    f"|d forget_unique| {d_forget:.3f}, |d retain_unique| {d_retain:.3f}"))
    ratio = cost.get("heldout_loss_ratio")
    if ratio is not None:
        out.append(("held-out loss of the sink model within 5% of the dense model", ratio <= 1.05, f"ratio {ratio:.3f}"))
    return out


def markdown(result: dict) -> str:
    config = result["sink_config"]
    lines = [f"# Sinks benchmark: {result['run']} ({result['forget']})", "",
             f"Produced by `{result['command']}`. Sink model: p_gen {config['p_gen']}, p_mem {config['p_mem']}, "
             f"sink_dropout {config['sink_dropout']}, sink layers {config['sink_layers'] or 'all'}. Conditions are "
             "described in the script's docstring.", "",
             f"Forget sources: {result['forget_sources']}; placebo sources: {result['placebo_sources']}; "
             f"routing accuracy (unique questions of trained sources): {_fmt(result['routing_accuracy'])}", "",
             "| condition | " + " | ".join(TABLE_KEYS) + " |", "|---" * (len(TABLE_KEYS) + 1) + "|"]
    for name in CONDITION_ORDER:
        summary = result["summaries"].get(name)
        if summary is not None:
            lines.append(f"| {name} | " + " | ".join(_fmt(summary.get(k)) for k in TABLE_KEYS) + " |")
    lines += ["", "## Capability cost", ""]
    lines += [f"- {key}: {_fmt(value)}" for key, value in result["cost"].items()]
    lines += ["", "## Must show (issue 6)", ""]
    for text, ok, detail in result["checks"]:
        mark = "n/a" if ok is None else ("PASS" if ok else "FAIL")
        lines.append(f"- [{mark}] {text}: {detail}")
    lines += ["", f"Machine: {result['machine']}", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--forget", default="forget10")
    parser.add_argument("--sink-model", type=Path, default=None, help="default RUN/models/full-sinks")
    parser.add_argument("--retain-model", type=Path, default=None,
                        help="default RUN/models/retain-sinks, else RUN/models/retain")
    parser.add_argument("--dense-model", type=Path, default=None, help="default RUN/models/full (optional)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--throughput-steps", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="placebo source draw")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="default RUN/bench/sinks")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    run = args.run
    world = load_world(run / "world")
    forget_sources = world.split_sources(args.forget)
    suffix = "" if args.forget == "forget10" else f"-{args.forget}"
    sink_path = args.sink_model or run / "models" / "full-sinks"
    retain_path = args.retain_model or next(
        (p for p in (run / "models" / f"retain{suffix}-sinks", run / "models" / f"retain{suffix}") if p.is_dir()), None)
    dense_path = args.dense_model or run / "models" / "full"
    if retain_path is None:
        raise UserError(f"no retain model under {run / 'models'}: train one (obliviate train --arch sinks)")
    out = args.out or run / "bench" / "sinks"
    out.mkdir(parents=True, exist_ok=True)

    evaluations: dict[str, dict] = {}
    retain_model, retain_tokenizer = load_model_and_tokenizer(retain_path)
    evaluations["retain"] = _evaluate(retain_model, retain_tokenizer, world, args.forget, None, args.batch_size)
    reference = RetainReference.from_result(evaluations["retain"], world, args.forget)
    del retain_model

    model, tokenizer = load_model_and_tokenizer(sink_path)
    routing = routing_accuracy(model, tokenizer, world)
    evaluations["full"] = _evaluate(model, tokenizer, world, args.forget, reference, args.batch_size)
    task = _task(world, args.forget, forget_sources)
    variants = {"switched": SwitchConfig(), "switched-fallback-backbone": SwitchConfig(route_forgotten="backbone"),
                "switched-nearest": SwitchConfig(route_forgotten="nearest"),
                "switched-backbone": SwitchConfig(inference_mode="backbone")}
    for name, config in variants.items():
        model.restore(model.forgotten)
        SwitchMethod(config).unlearn(model, tokenizer, task)
        evaluations[name] = _evaluate(model, tokenizer, world, args.forget, reference, args.batch_size)
    model.restore(model.forgotten)
    retain_pool = sorted(world.split_sources("retain") - forget_sources)
    placebo_sources = sorted(random.Random(args.seed).sample(retain_pool, len(forget_sources)))
    SwitchMethod().unlearn(model, tokenizer, _task(world, args.forget, set(placebo_sources)))
    evaluations["placebo"] = _evaluate(model, tokenizer, world, args.forget, reference, args.batch_size)
    model.restore(model.forgotten)

    # capability cost ------------------------------------------------------------------------
    heldout_texts = [d["text"] for d in world.docs_for(world.split_sources("holdout"))]
    train_docs = world.docs_for(world.training_sources(None))
    cost: dict[str, float | None] = {"switch_latency_ms": switch_latency_ms(model, tokenizer, task)}
    model.restore(model.forgotten)
    cost["heldout_loss_sinks_route"] = heldout_loss(model, tokenizer, heldout_texts)
    with model.mode("backbone"):
        cost["heldout_loss_sinks_backbone"] = heldout_loss(model, tokenizer, heldout_texts)
    sink_tps = training_throughput(model, tokenizer, [d["text"] for d in train_docs], args.throughput_steps, 16,
                                   [d["source_id"] for d in train_docs])
    retain_seconds = read_run_config(retain_path).get("seconds")
    cost["retrain_seconds"] = retain_seconds
    if retain_seconds:
        cost["retrain_over_switch_ratio"] = retain_seconds / (cost["switch_latency_ms"] / 1e3)
    if dense_path.is_dir():
        dense, dense_tokenizer = load_model_and_tokenizer(dense_path)
        cost["heldout_loss_dense"] = heldout_loss(dense, dense_tokenizer, heldout_texts)
        cost["heldout_loss_ratio"] = cost["heldout_loss_sinks_route"] / cost["heldout_loss_dense"]
        dense_tps = training_throughput(dense, dense_tokenizer, [d["text"] for d in train_docs],
                                        args.throughput_steps, 16, None)
        cost["train_tokens_per_s_sinks"], cost["train_tokens_per_s_dense"] = sink_tps, dense_tps
        cost["train_throughput_ratio_measured"] = sink_tps / dense_tps
        sink_cfg, dense_cfg = read_run_config(sink_path), read_run_config(dense_path)
        if sink_cfg.get("seconds") and dense_cfg.get("seconds"):
            cost["train_seconds_sinks"], cost["train_seconds_dense"] = sink_cfg["seconds"], dense_cfg["seconds"]
            cost["train_time_ratio_recorded"] = sink_cfg["seconds"] / dense_cfg["seconds"]
    else:
        cost["train_tokens_per_s_sinks"] = sink_tps

    summaries = {name: {k: e["summary"].get(k) for k in TABLE_KEYS} for name, e in evaluations.items()}
    result = {
        "command": "python bench/bench_sinks.py " + " ".join(sys.argv[1:]),
        "run": str(run), "forget": args.forget, "forget_sources": sorted(forget_sources),
        "placebo_sources": placebo_sources, "routing_accuracy": routing,
        "models": {"sinks": str(sink_path), "retain": str(retain_path),
                   "dense": str(dense_path) if dense_path.is_dir() else None},
        "sink_config": {k: getattr(model.config, k) for k in ("p_gen", "p_mem", "sink_layers", "sink_dropout",
                                                              "backbone_scale", "hash_key")},
        "summaries": summaries, "cost": cost,
        "eval_seconds": {name: e["config"].get("seconds") for name, e in evaluations.items()},
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, threads {args.threads}",
    }
    result["checks"] = checks(summaries, cost)
    for name, evaluation in evaluations.items():
        atomic_write_json(out / f"eval-{name}.json", evaluation)
    atomic_write_json(out / "sinks.json", result)
    atomic_write_text(out / "sinks.md", markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
