"""WHP bench on a trained run: familiarity over fine-tuning steps, alpha sweep, hard vs soft labels,
and the inference-only variant, against the model retrained without the saga.

    python bench/bench_whp.py --run RUN --world WORLD [--alphas 0,1,5,10] [--labels hard,soft]
        [--steps N] [--eval-every 10] [--no-full-eval] [--ablate-repeated-rule] [--ablate-unlikelihood]
        [--extra-seeds 1,2]
        [--out bench/results/whp.json]

RUN holds ``models/full`` (trained on everything) and the saga-free retrain
(``models/retain_saga`` or ``models/retain-saga``, or ``--retain PATH``). The reinforced
model is trained once (or reused with ``--reinforced PATH``), the translation is done once,
and each (labels, alpha) fine-tunes a fresh copy of the full model for ``--steps`` steps,
measuring at every ``--eval-every`` steps:
  - familiarity_completion / familiarity_probability (obliviate.eval's judge and scoring),
  - general_prob: mean probability of the general-knowledge QA answers (a cheap utility proxy);
at the end, unless ``--no-full-eval``, the whole evaluator (``forget="saga"``, retain
reference): model_utility, forget_quality, familiarity, ...
``--ablate-repeated-rule`` adds a (hard labels, default alpha) run with the other rule for
repeated anchors (their prediction trained with the anchor forbidden, or left untrained as in the
paper; ``WHPConfig.train_repeated_anchor_predictions``);
``--ablate-unlikelihood`` adds one without the anchor unlikelihood term (``anchor_unlikelihood=0``:
the paper's fine-tuning loss) and one with it but without the suppressed target-only terms;
``--extra-seeds`` repeats the (hard, default alpha) run(s), and the (soft, default alpha) run
without ablations, with other seeds (translation choices and data order), measured at the end
only: greedy completion familiarity on 29 prompts moves by whole probes (one probe graded 3 =
5/29 = 0.17), so one seed says little.
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

from obliviate.errors import UserError
from obliviate.eval.evaluator import evaluate
from obliviate.io import atomic_write_json, atomic_write_text
from obliviate.models.loading import load_model, load_model_and_tokenizer
from obliviate.whp.config import DiscoveryConfig, WHPConfig
from obliviate.whp.curve import FamiliarityCurve, FamiliarityProbe
from obliviate.whp.discovery import discover_anchors, target_only_terms, with_discovered_terms
from obliviate.whp.labels import anchor_start_tokens, compute_generic_targets, unlikelihood_tokens
from obliviate.whp.reinforced import load_reinforced
from obliviate.whp.training import finetune_on_generic_labels, reinforce
from obliviate.whp.translation import translate_documents
from obliviate.workflows.evaluate import reference_for
from obliviate.world.anchors import load_anchors, validate_anchors
from obliviate.world.loader import load_world

log = logging.getLogger("bench_whp")

FULL_EVAL_KEYS = ("model_utility", "forget_quality", "familiarity_completion", "familiarity_probability",
                  "retain_prob", "retain_truth_ratio", "general_truth_ratio", "knowmem_f", "verbmem_f")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="run directory with models/full")
    parser.add_argument("--world", type=Path, required=True, help="world directory (with a saga)")
    parser.add_argument("--retain", type=Path, default=None, help="saga-free retrain (default: RUN/models/retain_saga)")
    parser.add_argument("--reinforced", type=Path, default=None, help="reuse this reinforced model")
    parser.add_argument("--anchors", type=Path, default=None, help="anchored-term JSON (default: the world's)")
    parser.add_argument("--discover-extra-anchors", type=int, default=0,
                        help="add discovery's top K terms the dictionary lacks (WHPConfig.discover_extra_anchors)")
    parser.add_argument("--alphas", default="0,1,5,10")
    parser.add_argument("--labels", default="hard,soft", help="hard, soft or both")
    parser.add_argument("--steps", type=int, default=None,
                        help="fine-tuning steps per configuration (default: WHPConfig's finetune_steps)")
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--lr", type=float, default=None, help="fine-tuning learning rate (default: WHPConfig's)")
    parser.add_argument("--block-size", type=int, default=512)
    parser.add_argument("--repeated-rule", choices=("train", "skip"), default=None,
                        help="every run: train the prediction of a repeated anchor (train) or leave it untrained, "
                             "the paper's rule (skip); default: WHPConfig's")
    parser.add_argument("--ablate-repeated-rule", action="store_true",
                        help="add a (hard, default alpha) run with the other rule for repeated anchors")
    parser.add_argument("--anchor-unlikelihood", type=float, default=None,
                        help="weight of the anchor unlikelihood term (default: WHPConfig's)")
    parser.add_argument("--suppress-target-terms", type=int, default=None,
                        help="discovery's top N examined for target-only terms (default: WHPConfig's)")
    parser.add_argument("--ablate-unlikelihood", action="store_true",
                        help="add (hard, default alpha) runs without the unlikelihood term and without "
                             "the suppressed terms")
    parser.add_argument("--extra-seeds", default="", help="more seeds for the (hard and soft, default alpha) runs, e.g. 1,2")
    parser.add_argument("--allow-anchor-labels", action="store_true",
                        help="ablation: let generic labels start an anchored term (the paper's rule only)")
    parser.add_argument("--no-full-eval", action="store_true", help="skip the full evaluator at the end of each run")
    parser.add_argument("--no-inference", action="store_true", help="skip the inference-only variant")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/whp.json"))
    return parser.parse_args(argv)


def retain_path(run: Path, given: Path | None) -> Path:
    candidates = [given] if given is not None else [run / "models" / "retain_saga", run / "models" / "retain-saga"]
    for path in candidates:
        if path is not None and (path / "config.json").is_file():
            return path
    raise UserError(f"no saga-free retrain found (tried {', '.join(str(c) for c in candidates)}); pass --retain")


def full_eval(model, tokenizer, world, reference) -> dict | None:
    summary = evaluate(model, tokenizer, world, "saga", reference=reference)["summary"]
    return {k: summary.get(k) for k in FULL_EVAL_KEYS}


def fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def ul_name(run: dict) -> str:
    weight = run.get("unlikelihood", 0.0)
    return f"{weight:g} + {run.get('suppressed', 0)} terms" if weight else "0"


def markdown(result: dict) -> str:
    lines = ["# WHP bench", "", f"Produced by `{result['config']['command']}`.", "",
             f"run `{result['config']['run']}`, world `{result['config']['world']}`, "
             f"{result['config']['steps']} fine-tuning steps, lr {result['config']['lr']}, "
             f"{result['translation']['translated']} anchor occurrences in {result['translation']['blocks']} blocks "
             f"({result['translation'].get('repeated', '?')} of them 2nd+ occurrences of their term in the block).", ""]
    light_keys = ("familiarity_completion", "familiarity_probability", "general_prob")
    lines += ["## Reference models", "", "| model | " + " | ".join(light_keys) + " |",
              "|---|" + "---|" * len(light_keys)]
    for name, metrics in result["references"].items():
        lines.append(f"| {name} | " + " | ".join(fmt(metrics.get(k)) for k in light_keys) + " |")
    full_keys = [k for k in FULL_EVAL_KEYS if any((r.get("final") or {}).get(k) is not None for r in result["runs"])]
    lines += ["", "## After fine-tuning", "",
              "Repeated anchors: `train` = the prediction of a 2nd+ occurrence of an anchor in a block is trained "
              "with the anchor and its translation forbidden; `skip` = left untrained (the paper's rule). "
              "Unlikelihood: the weight of the anchor unlikelihood term (0 = the paper's loss) and how many "
              "target-only terms it also pushes down.", "",
              "| labels | alpha | repeated | unlikelihood | " + " | ".join(light_keys + tuple(f"full:{k}" for k in full_keys))
              + " | seconds |", "|---|---|---|---|" + "---|" * (len(light_keys) + len(full_keys) + 1)]
    for run in result["runs"]:
        last = run["curve"][-1]
        final = run.get("final") or {}
        lines.append(f"| {run['labels']} | {run['alpha']:g} | {run['repeated']} | {ul_name(run)} | "
                     + " | ".join(fmt(last.get(k)) for k in light_keys)
                     + "".join(f" | {fmt(final.get(k))}" for k in full_keys) + f" | {run['seconds']:.0f} |")
    if result.get("full_eval_references"):
        lines += ["", "Full evaluation of the reference models: " + "; ".join(
            f"{name}: " + ", ".join(f"{k}={fmt(v)}" for k, v in metrics.items() if v is not None)
            for name, metrics in result["full_eval_references"].items())]
    lines += ["", "## Familiarity (probability) over fine-tuning steps", ""]
    steps = sorted({p["step"] for run in result["runs"] for p in run["curve"]})
    for key in ("familiarity_probability", "familiarity_completion"):
        if key == "familiarity_completion":
            lines += ["", "## Familiarity (completion) over fine-tuning steps", ""]
        lines += ["| labels | alpha | repeated | unlikelihood | " + " | ".join(f"step {s}" for s in steps) + " |",
                  "|---|---|---|---|" + "---|" * len(steps)]
        for run in result["runs"]:
            by_step = {p["step"]: p for p in run["curve"]}
            lines.append(f"| {run['labels']} | {run['alpha']:g} | {run['repeated']} | {ul_name(run)} | " + " | ".join(
                fmt(by_step.get(s, {}).get(key)) for s in steps) + " |")
    if result.get("seed_spread"):
        keys = ("familiarity_completion", "familiarity_probability", "general_prob", "model_utility")
        lines += ["", "## Seed spread (alpha %g)" % result["seed_spread"][0]["alpha"], "",
                  "| labels | repeated | unlikelihood | seed | " + " | ".join(keys) + " |",
                  "|---|---|---|---|" + "---|" * len(keys)]

        def variant_of(row: dict) -> tuple:
            return row.get("labels", "hard"), row["repeated"], ul_name(row)

        for row in result["seed_spread"]:
            lines.append("| " + " | ".join(variant_of(row)) + f" | {row['seed']} | "
                         + " | ".join(fmt(row.get(k)) for k in keys) + " |")
        for variant in dict.fromkeys(variant_of(r) for r in result["seed_spread"]):
            rows = [r for r in result["seed_spread"] if variant_of(r) == variant]
            means = [None if any(r.get(k) is None for r in rows) else sum(r[k] for r in rows) / len(rows) for k in keys]
            lines.append("| " + " | ".join(variant) + f" | mean of {len(rows)} | "
                         + " | ".join(fmt(m) for m in means) + " |")
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
    world = load_world(args.world)
    base, tokenizer = load_model_and_tokenizer(args.run / "models" / "full")
    retain_dir = retain_path(args.run, args.retain)
    texts = [d["text"] for d in world.docs_for(world.split_sources("saga"))]
    anchors = load_anchors(args.anchors) if args.anchors else validate_anchors(world.anchors, "the world's anchors.json")
    overrides = {"lr": args.lr, "anchor_unlikelihood": args.anchor_unlikelihood,
                 "suppress_target_terms": args.suppress_target_terms}
    config = WHPConfig(block_size=args.block_size, seed=args.seed,
                       **{k: v for k, v in overrides.items() if v is not None})
    steps = args.steps if args.steps is not None else config.finetune_steps
    # train_repeated_anchor_predictions of the main runs
    default_rule = config.train_repeated_anchor_predictions if args.repeated_rule is None \
        else args.repeated_rule == "train"
    extra_seeds = [int(x) for x in args.extra_seeds.split(",") if x.strip()]
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
    generic = [d["text"] for d in world.docs_for(world.training_sources("saga"))]
    if args.discover_extra_anchors > 0:
        timer = time.perf_counter()
        found = discover_anchors(base, reinforced, tokenizer, texts, generic,
                                 DiscoveryConfig(top=args.discover_extra_anchors, block_size=args.block_size))
        anchors, added = with_discovered_terms(anchors, found.anchors, args.discover_extra_anchors)
        log.info("discovery (%.1fs) added %d terms: %s", time.perf_counter() - timer, len(added), list(added))
    suppressed: list[str] = []
    if config.anchor_unlikelihood > 0 and config.suppress_target_terms > 0:
        suppressed = target_only_terms(base, reinforced, tokenizer, texts, generic, anchors,
                                       config.suppress_target_terms, args.block_size)
        log.info("%d target-only terms to push down: %s", len(suppressed), suppressed)
    max_positions = getattr(base.config, "max_position_embeddings", args.block_size) or args.block_size

    def translate(seed: int, train_repeated: bool):
        return translate_documents(texts, tokenizer, anchors, min(args.block_size, max_positions), seed,
                                   train_repeated_anchor_predictions=train_repeated)

    blocks, stats = translate(args.seed, default_rule)
    log.info("reinforced in %.0fs; %d blocks, %d anchor occurrences (%d repeated in their block)",
             reinforce_seconds, stats.blocks, stats.translated, stats.repeated)
    anchor_tokens = [] if args.allow_anchor_labels else anchor_start_tokens(tokenizer, anchors)

    probe = FamiliarityProbe(world, tokenizer)
    retain = load_model(retain_dir)
    references = {"full": probe.measure(base), "retain_saga": probe.measure(retain),
                  "reinforced": probe.measure(reinforced)}
    log.info("references: %s", references)
    reference = None
    full_refs = {}
    if not args.no_full_eval:
        reference = reference_for(retain_dir, world, "saga")
        full_refs = {"full": full_eval(base, tokenizer, world, reference),
                     "retain_saga": full_eval(retain, tokenizer, world, reference)}
    del retain

    def rule_name(train_repeated: bool) -> str:
        return "train" if train_repeated else "skip"

    def fine_tune(kind: str, alpha: float, run_blocks, seed: int, every: int, weight: float, terms: list[str]):
        """A fresh copy of the base model fine-tuned on generic labels; returns (model, curve, agreement).
        ``weight``: the anchor unlikelihood weight, ``terms``: target-only terms it also pushes down."""
        pushed_down = unlikelihood_tokens(tokenizer, anchor_start_tokens(tokenizer, anchors), terms) if weight else []
        targets = compute_generic_targets(base, reinforced, run_blocks, alpha=alpha, soft=kind == "soft",
                                          soft_top_k=config.soft_top_k, batch_size=config.label_batch_size,
                                          pad_id=tokenizer.pad_token_id, anchor_tokens=anchor_tokens)
        model = copy.deepcopy(base)
        points = [{"step": 0, **references["full"]}]
        finetune_on_generic_labels(model, targets, tokenizer.pad_token_id, soft=kind == "soft", steps=steps,
                                   lr=config.lr, batch_size=config.batch_size, seed=seed,
                                   callbacks=[FamiliarityCurve(probe, every, points)], anchor_ids=pushed_down,
                                   anchor_weight=weight)
        positions = sum(len(t.positions) for t in targets)
        agreement = sum(t.agreement() * len(t.positions) for t in targets) / max(1, positions)
        return model, points, round(agreement, 4)

    # variants of the (hard, default alpha) run: (train_repeated, unlikelihood weight, suppressed terms)
    default_variant = (default_rule, config.anchor_unlikelihood, suppressed if config.anchor_unlikelihood else [])
    ablations = []
    if args.ablate_repeated_rule:
        ablations.append((not default_rule,) + default_variant[1:])
    if args.ablate_unlikelihood and config.anchor_unlikelihood:
        ablations.append((default_rule, 0.0, []))
        if suppressed:
            ablations.append((default_rule, config.anchor_unlikelihood, []))
    plan = [(kind, alpha) + default_variant for kind in label_kinds for alpha in alphas]
    plan += [("hard", config.alpha) + variant for variant in ablations]

    def run_row(train_repeated: bool, weight: float, terms: list[str]) -> dict:
        return {"repeated": rule_name(train_repeated), "unlikelihood": weight, "suppressed": len(terms)}

    runs = []
    for kind, alpha, train_repeated, weight, terms in plan:
        started = time.perf_counter()
        log.info("labels=%s alpha=%g repeated=%s unlikelihood=%g (+%d terms)", kind, alpha,
                 rule_name(train_repeated), weight, len(terms))
        run_blocks = blocks if train_repeated == default_rule else translate(args.seed, train_repeated)[0]
        model, points, agreement = fine_tune(kind, alpha, run_blocks, args.seed, args.eval_every, weight, terms)
        final = full_eval(model, tokenizer, world, reference) if not args.no_full_eval else None
        runs.append({"labels": kind, "alpha": alpha, **run_row(train_repeated, weight, terms),
                     "label_agreement": agreement, "curve": points, "final": final,
                     "seconds": round(time.perf_counter() - started, 1)})
        del model

    seed_spread = []
    if extra_seeds:
        # every variant with hard labels; soft labels (when benched) in the default variant only
        spread_plan = [("hard",) + variant for variant in [default_variant] + ablations]
        spread_plan += [("soft",) + default_variant] if "soft" in label_kinds else []
        for kind, train_repeated, weight, terms in spread_plan:
            row = {"labels": kind, **run_row(train_repeated, weight, terms)}
            same = [r for r in runs if r["alpha"] == config.alpha and all(r[k] == v for k, v in row.items())]
            for seed in ([args.seed] if same else []) + extra_seeds:
                if seed == args.seed:
                    last, final = same[0]["curve"][-1], same[0]["final"] or {}
                else:
                    log.info("seed %d, %s", seed, row)
                    model, points, _ = fine_tune(kind, config.alpha, translate(seed, train_repeated)[0], seed, steps,
                                                 weight, terms)
                    last = points[-1]
                    final = full_eval(model, tokenizer, world, reference) if not args.no_full_eval else {}
                    del model
                seed_spread.append({**row, "seed": seed, "alpha": config.alpha,
                                    **{k: last.get(k) for k in ("familiarity_completion", "familiarity_probability",
                                                                "general_prob")},
                                    "model_utility": (final or {}).get("model_utility")})

    inference = []
    if not args.no_inference:
        for alpha in alphas:
            if alpha > 0:
                inference.append({"alpha": alpha, **probe.measure_inference_variant(base, reinforced, alpha)})

    result = {
        "config": {"command": "python bench/bench_whp.py " + " ".join(sys.argv[1:] if argv is None else argv),
                   "run": str(args.run), "world": str(args.world), "retain": str(retain_dir), "alphas": alphas,
                   "labels": label_kinds, "steps": steps, "eval_every": args.eval_every, "lr": config.lr,
                   "train_repeated_anchor_predictions": default_rule, "extra_seeds": extra_seeds,
                   "block_size": args.block_size, "seed": args.seed, "threads": args.threads,
                   "forbid_anchor_tokens": not args.allow_anchor_labels, "anchor_start_tokens": len(anchor_tokens),
                   "reinforce_seconds": round(reinforce_seconds, 1), "anchors": len(anchors),
                   "discover_extra_anchors": args.discover_extra_anchors,
                   "anchor_unlikelihood": config.anchor_unlikelihood,
                   "suppress_target_terms": config.suppress_target_terms, "suppressed_terms": suppressed},
        "translation": {"blocks": stats.blocks, "tokens": stats.tokens, "translated": stats.translated,
                        "repeated": stats.repeated, "unaligned": stats.unaligned},
        "references": references,
        "full_eval_references": full_refs,
        "runs": runs,
        "seed_spread": seed_spread,
        "inference": inference,
    }
    atomic_write_json(args.out, result)
    atomic_write_text(args.out.with_suffix(".md"), markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
