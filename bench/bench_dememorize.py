"""Benchmark RL dememorization (Kassem et al.) on self-built data.

A tiny Llama memorises N documents (two generated reviews each); a retain model is
trained without the first F of them (the gold standard). Each RL run (TRL GRPO / RLOO,
reward = -ROUGE-L or -BLEU to the true suffix, KL to the start) starts from the full model
and is graded on: exact-suffix extraction and greedy similarity on the forget documents,
extraction on the retain documents (collateral), and retain perplexity.

    OMP_NUM_THREADS=1 python bench/bench_dememorize.py [--out bench/results/dememorize.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from obliviate.dememorize.data import split_documents  # noqa: E402
from obliviate.dememorize.evaluate import extraction_scores, perplexity  # noqa: E402
from obliviate.dememorize.toy import memorisation_toy  # noqa: E402
from obliviate.dememorize.train import DememorizeConfig, dememorize  # noqa: E402
from obliviate.io import atomic_write_json  # noqa: E402


def grade(model, tokenizer, forget_pieces, retain_pieces, retain_docs) -> dict:
    forget = extraction_scores(model, tokenizer, forget_pieces).summary()
    return {"forget_" + k: v for k, v in forget.items()} | {
        "retain_exact_extraction": extraction_scores(model, tokenizer, retain_pieces).exact_extraction,
        "retain_perplexity": perplexity(model, tokenizer, retain_docs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=30)
    parser.add_argument("--forget", type=int, default=8)
    parser.add_argument("--prefix", type=int, default=12)
    parser.add_argument("--suffix", type=int, default=12)
    parser.add_argument("--epochs", type=float, default=120)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/dememorize.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()

    toy = memorisation_toy(f"dememorize-bench-{args.seed}", args.docs)
    tokenizer, docs = toy.tokenizer, toy.docs
    forget_docs, retain_docs = docs[: args.forget], docs[args.forget:]

    def train(subset):
        return toy.train(subset, epochs=args.epochs, seed=args.seed)

    full, retain = train(docs), train(retain_docs)
    forget_pieces = split_documents(tokenizer, forget_docs, args.prefix, args.suffix)
    retain_pieces = split_documents(tokenizer, retain_docs, args.prefix, args.suffix)
    rows = {"full": grade(full, tokenizer, forget_pieces, retain_pieces, retain_docs),
            "retain (gold)": grade(retain, tokenizer, forget_pieces, retain_pieces, retain_docs)}
    base = dict(prefix_tokens=args.prefix, suffix_tokens=args.suffix, max_steps=args.steps, seed=args.seed)
    runs = {
        "grpo rouge_l beta=0.1": DememorizeConfig(**base),
        "grpo rouge_l beta=0.3": DememorizeConfig(**base, beta=0.3),
        "grpo rouge_l beta=0": DememorizeConfig(**base, beta=0.0),
        "grpo bleu beta=0.1": DememorizeConfig(**base, similarity="bleu"),
        "rloo rouge_l beta=0.1": DememorizeConfig(**base, algorithm="rloo"),
    }
    for name, config in runs.items():
        run_started = time.perf_counter()
        model = dememorize(copy.deepcopy(full), tokenizer, forget_pieces, config)
        rows[name] = grade(model, tokenizer, forget_pieces, retain_pieces, retain_docs)
        rows[name]["seconds"] = round(time.perf_counter() - run_started, 1)
        print(name, json.dumps(rows[name]), flush=True)
    result = {"config": vars(args) | {"out": str(args.out)}, "results": rows,
              "seconds": round(time.perf_counter() - started, 1)}
    atomic_write_json(args.out, result)
    header = f"{'model':26s} {'forget exact':>12s} {'forget rougeL':>13s} {'retain exact':>12s} {'retain ppl':>10s}"
    print(header)
    for name, row in rows.items():
        print(f"{name:26s} {row['forget_exact_extraction']:12.2f} {row['forget_greedy_rouge_l']:13.2f} "
              f"{row['retain_exact_extraction']:12.2f} {row['retain_perplexity']:10.3f}")
    print(f"wrote {args.out} ({result['seconds']}s)")


if __name__ == "__main__":
    main()
