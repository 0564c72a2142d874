"""WHP bench on a trained run: familiarity over fine-tuning steps, alpha sweep, hard vs soft labels,
and the inference-only variant, against the model retrained without the saga.

    python bench/bench_whp.py --run RUN --world WORLD [--alphas 0,1,5,10] [--labels hard,soft]
        [--steps 60] [--eval-every 10] [--no-full-eval] [--out bench/results/whp.json]

RUN holds ``models/full`` (trained on everything) and the saga-free retrain
(``models/retain_saga`` or ``models/retain-saga``, or ``--retain PATH``). The reinforced
model is trained once (or reused with ``--reinforced PATH``), the translation is done once,
and each (labels, alpha) fine-tunes a fresh copy of the full model for ``--steps`` steps,
measuring at every ``--eval-every`` steps:
  - familiarity_completion / familiarity_probability (obliviate.eval's judge and scoring),
  - general_prob: mean probability of the general-knowledge QA answers (a cheap utility proxy);
at the end, unless ``--no-full-eval``, the whole evaluator (``forget="saga"``, retain
reference): model_utility, forget_quality, familiarity, ...
Writes JSON (``--out``) and a markdown summary next to it (same name, ``.md``).
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
import time
from pathlib import Path

import torch

log = logging.getLogger("bench_whp")

FULL_EVAL_KEYS = ("model_utility", "forget_quality", "familiarity_completion", "familiarity_probability",
                  "retain_prob", "general_truth_ratio", "knowmem_rouge", "verbmem_rouge")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="run directory with models/full")
    parser.add_argument("--world", type=Path, required=True, help="world directory (with a saga)")
    parser.add_argument("--retain", type=Path, default=None, help="saga-free retrain (default: RUN/models/retain_saga)")
    parser.add_argument("--reinforced", type=Path, default=None, help="reuse this reinforced model")
    parser.add_argument("--anchors", type=Path, default=None, help="anchored-term JSON (default: the world's)")
    parser.add_argument("--alphas", default="0,1,5,10")
    parser.add_argument("--labels", default="hard,soft", help="hard, soft or both")
    parser.add_argument("--steps", type=int, default=60, help="fine-tuning steps per configuration")
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--lr", type=float, default=None, help="fine-tuning learning rate (default: WHPConfig's)")
    parser.add_argument("--block-size", type=int, default=512)
    parser.add_argument("--allow-anchor-labels", action="store_true",
                        help="ablation: let generic labels start an anchored term (the paper's rule only)")
    parser.add_argument("--no-full-eval", action="store_true", help="skip the full evaluator at the end of each run")
    parser.add_argument("--no-inference", action="store_true", help="skip the inference-only variant")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/whp.json"))
    return parser.parse_args(argv)


def retain_path(run: Path, given: Path | None) -> Path:
    from obliviate.errors import UserError

    candidates = [given] if given is not None else [run / "models" / "retain_saga", run / "models" / "retain-saga"]
    for path in candidates:
        if path is not None and (path / "config.json").is_file():
            return path
    raise UserError(f"no saga-free retrain found (tried {', '.join(str(c) for c in candidates)}); pass --retain")


def full_eval(model, tokenizer, world, reference) -> dict | None:
    from obliviate.eval.evaluator import evaluate

    summary = evaluate(model, tokenizer, world, "saga", reference=reference)["summary"]
    return {k: summary.get(k) for k in FULL_EVAL_KEYS}


def fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def markdown(result: dict) -> str:
    lines = ["# WHP bench", "", f"Produced by `{result['config']['command']}`.", "",
             f"run `{result['config']['run']}`, world `{result['config']['world']}`, "
             f"{result['config']['steps']} fine-tuning steps, lr {result['config']['lr']}, "
             f"{result['translation']['translated']} anchor occurrences in {result['translation']['blocks']} blocks.", ""]
    light_keys = ("familiarity_completion", "familiarity_probability", "general_prob")
    lines += ["## Reference models", "", "| model | " + " | ".join(light_keys) + " |",
              "|---|" + "---|" * len(light_keys)]
    for name, metrics in result["references"].items():
        lines.append(f"| {name} | " + " | ".join(fmt(metrics.get(k)) for k in light_keys) + " |")
    full_keys = [k for k in FULL_EVAL_KEYS if any((r.get("final") or {}).get(k) is not None for r in result["runs"])]
    lines += ["", "## After fine-tuning", "", "| labels | alpha | " + " | ".join(light_keys + tuple(f"full:{k}" for k in full_keys))
              + " | seconds |", "|---|---|" + "---|" * (len(light_keys) + len(full_keys) + 1)]
    for run in result["runs"]:
        last = run["curve"][-1]
        final = run.get("final") or {}
        lines.append(f"| {run['labels']} | {run['alpha']:g} | " + " | ".join(fmt(last.get(k)) for k in light_keys)
                     + "".join(f" | {fmt(final.get(k))}" for k in full_keys) + f" | {run['seconds']:.0f} |")
    if result.get("full_eval_references"):
        lines += ["", "Full evaluation of the reference models: " + "; ".join(
            f"{name}: " + ", ".join(f"{k}={fmt(v)}" for k, v in metrics.items() if v is not None)
            for name, metrics in result["full_eval_references"].items())]
    lines += ["", "## Familiarity (probability) over fine-tuning steps", ""]
    steps = sorted({p["step"] for run in result["runs"] for p in run["curve"]})
    lines += ["| labels | alpha | " + " | ".join(f"step {s}" for s in steps) + " |",
              "|---|---|" + "---|" * len(steps)]
    for run in result["runs"]:
        by_step = {p["step"]: p for p in run["curve"]}
        lines.append(f"| {run['labels']} | {run['alpha']:g} | " + " | ".join(
            fmt(by_step.get(s, {}).get("familiarity_probability")) for s in steps) + " |")
    if result.get("inference"):
        lines += ["", "## Inference-only variant (no fine-tuning)", "", "| alpha | " + " | ".join(light_keys) + " |",
                  "|---|" + "---|" * len(light_keys)]
        for row in result["inference"]:
            lines.append(f"| {row['alpha']:g} | " + " | ".join(fmt(row.get(k)) for k in light_keys) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from obliviate.io import atomic_write_json, atomic_write_text
    from obliviate.models.loading import load_model, load_model_and_tokenizer
    from obliviate.whp.anchors import load_anchors, validate_anchors
    from obliviate.whp.config import WHPConfig
    from obliviate.whp.curve import FamiliarityCurve, FamiliarityProbe
    from obliviate.whp.labels import anchor_start_tokens, compute_generic_targets
    from obliviate.whp.pipeline import load_reinforced
    from obliviate.whp.training import finetune_on_generic_labels, reinforce
    from obliviate.whp.translation import translate_documents
    from obliviate.world.loader import load_world

    world = load_world(args.world)
    base, tokenizer = load_model_and_tokenizer(args.run / "models" / "full")
    retain_dir = retain_path(args.run, args.retain)
    texts = [d["text"] for d in world.docs_for(world.split_sources("saga"))]
    anchors = load_anchors(args.anchors) if args.anchors else validate_anchors(world.anchors, "the world's anchors.json")
    config = WHPConfig(block_size=args.block_size, seed=args.seed, **({"lr": args.lr} if args.lr else {}))
    alphas = [float(a) for a in args.alphas.split(",") if a.strip()]
    label_kinds = [k.strip() for k in args.labels.split(",") if k.strip()]
    if not set(label_kinds) <= {"hard", "soft"}:
        sys.exit("--labels takes hard, soft or hard,soft")

    started = time.perf_counter()
    if args.reinforced:
        reinforced = load_reinforced(args.reinforced, base, tokenizer)
    else:
        reinforced, _ = reinforce(base, tokenizer, texts, epochs=config.reinforce_epochs, lr=config.reinforce_lr,
                                  batch_size=config.batch_size, block_size=config.block_size, seed=args.seed)
    reinforce_seconds = time.perf_counter() - started
    max_positions = getattr(base.config, "max_position_embeddings", args.block_size) or args.block_size
    blocks, stats = translate_documents(texts, tokenizer, anchors, min(args.block_size, max_positions), args.seed)
    log.info("reinforced in %.0fs; %d blocks, %d anchor occurrences", reinforce_seconds, stats.blocks, stats.translated)
    anchor_tokens = [] if args.allow_anchor_labels else anchor_start_tokens(tokenizer, anchors)

    probe = FamiliarityProbe(world, tokenizer)
    retain = load_model(retain_dir)
    references = {"full": probe.measure(base), "retain_saga": probe.measure(retain),
                  "reinforced": probe.measure(reinforced)}
    log.info("references: %s", references)
    reference = None
    full_refs = {}
    if not args.no_full_eval:
        from obliviate.eval.reference import reference_for

        reference = reference_for(retain_dir, world, "saga")
        full_refs = {"full": full_eval(base, tokenizer, world, reference),
                     "retain_saga": full_eval(retain, tokenizer, world, reference)}
    del retain

    runs = []
    for kind in label_kinds:
        for alpha in alphas:
            started = time.perf_counter()
            log.info("labels=%s alpha=%g", kind, alpha)
            targets = compute_generic_targets(base, reinforced, blocks, alpha=alpha, soft=kind == "soft",
                                              soft_top_k=config.soft_top_k, batch_size=config.label_batch_size,
                                              pad_id=tokenizer.pad_token_id, anchor_tokens=anchor_tokens)
            model = copy.deepcopy(base)
            points = [{"step": 0, **references["full"]}]
            finetune_on_generic_labels(model, targets, tokenizer.pad_token_id, soft=kind == "soft", steps=args.steps,
                                       lr=config.lr, batch_size=config.batch_size, seed=args.seed,
                                       callbacks=[FamiliarityCurve(probe, args.eval_every, points)])
            final = full_eval(model, tokenizer, world, reference) if not args.no_full_eval else None
            positions = sum(len(t.positions) for t in targets)
            agreement = sum(t.agreement() * len(t.positions) for t in targets) / max(1, positions)
            runs.append({"labels": kind, "alpha": alpha, "label_agreement": round(agreement, 4), "curve": points,
                         "final": final, "seconds": round(time.perf_counter() - started, 1)})
            del model

    inference = []
    if not args.no_inference:
        for alpha in alphas:
            if alpha > 0:
                inference.append({"alpha": alpha, **probe.measure_inference_variant(base, reinforced, alpha)})

    result = {
        "config": {"command": "python bench/bench_whp.py " + " ".join(sys.argv[1:] if argv is None else argv),
                   "run": str(args.run), "world": str(args.world), "retain": str(retain_dir), "alphas": alphas,
                   "labels": label_kinds, "steps": args.steps, "eval_every": args.eval_every, "lr": config.lr,
                   "block_size": args.block_size, "seed": args.seed, "threads": args.threads,
                   "forbid_anchor_tokens": not args.allow_anchor_labels, "anchor_start_tokens": len(anchor_tokens),
                   "reinforce_seconds": round(reinforce_seconds, 1)},
        "translation": {"blocks": stats.blocks, "tokens": stats.tokens, "translated": stats.translated,
                        "unaligned": stats.unaligned},
        "references": references,
        "full_eval_references": full_refs,
        "runs": runs,
        "inference": inference,
    }
    atomic_write_json(args.out, result)
    atomic_write_text(args.out.with_suffix(".md"), markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
