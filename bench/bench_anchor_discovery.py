"""WHP automatic anchor discovery vs the world's true anchored terms (issue 5).

    python bench/bench_anchor_discovery.py --run RUN [--reinforced PATH] [--out docs/results/tiny/anchors.json]

Runs ``obliviate.whp.discovery.discover_anchors`` on the saga of RUN/world with the run's
full model as the baseline (and a reinforced model: reused with ``--reinforced``, else
trained here with the WHP defaults), the other trained sources as generic text, and
reports recall of the world's dictionary (``anchors.json``) among the top k proposals for
k = |dictionary terms in the target|, 1.5x and 2x, plus the terms it missed, its top proposals
that are not in the dictionary, and the terms kept with fallback alternatives. A term counts
as found when a proposal equals it (case-insensitive); "covered" also counts a term that is a
whole-word part of a proposal.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import torch

from obliviate.io import atomic_write_json, atomic_write_text
from obliviate.models.loading import load_model_and_tokenizer
from obliviate.whp.config import DiscoveryConfig, WHPConfig
from obliviate.whp.discovery import discover_anchors
from obliviate.whp.reinforced import load_reinforced
from obliviate.whp.training import reinforce
from obliviate.world import load_world


def recall_at(proposals: list[str], truth: set[str], k: int) -> float:
    found = {p.lower() for p in proposals[:k]} & {t.lower() for t in truth}
    return len(found) / len(truth) if truth else 0.0


def covered_at(proposals: list[str], truth: set[str], k: int) -> float:
    """Share of dictionary terms equal to, or a whole-word part of, one of the top k proposals
    (WHP translates "Baisse Touley" as one anchor: proposing it covers "Touley" in the text)."""
    top = [p.lower() for p in proposals[:k]]
    covered = [t for t in truth if any(re.search(rf"(?<!\w){re.escape(t.lower())}(?!\w)", p) for p in top)]
    return len(covered) / len(truth) if truth else 0.0


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--reinforced", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench/results/anchors.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    world = load_world(args.run / "world")
    saga = world.split_sources("saga")
    targets = [d["text"] for d in world.docs_for(saga)]
    # discovery ranks n-grams of the target: dictionary terms that never occur in it cannot count
    joined = "\n".join(targets)
    truth = {t for t in world.anchors if re.search(rf"(?<!\w){re.escape(t)}(?!\w)", joined)}
    if not truth:
        raise SystemExit(f"{world.root} has no anchors.json term occurring in its saga to compare with")
    generic = [d["text"] for d in world.docs_for(world.trained_sources() - saga)]
    base, tokenizer = load_model_and_tokenizer(args.run / "models" / "full")
    started = time.perf_counter()
    if args.reinforced is not None:
        reinforced = load_reinforced(args.reinforced, base, tokenizer)
    else:
        defaults = WHPConfig()
        reinforced, _ = reinforce(base, tokenizer, targets, epochs=defaults.reinforce_epochs,
                                  lr=defaults.reinforce_lr, block_size=defaults.block_size)
    reinforce_seconds = time.perf_counter() - started
    ks = sorted({len(truth), int(1.5 * len(truth)), 2 * len(truth)})
    started = time.perf_counter()
    result = discover_anchors(base, reinforced, tokenizer, targets, generic, DiscoveryConfig(top=max(ks)))
    proposals = [c.term for c in result.candidates]
    lowered = {t.lower() for t in truth}
    summary = {
        "command": "python bench/bench_anchor_discovery.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "run": str(args.run), "dictionary_terms": len(world.anchors), "dictionary_terms_in_target": len(truth),
        "proposals": len(proposals),
        "recall_at": {str(k): round(recall_at(proposals, truth, k), 3) for k in ks},
        "covered_at": {str(k): round(covered_at(proposals, truth, k), 3) for k in ks},
        "missed": sorted(t for t in truth if t.lower() not in {p.lower() for p in proposals}),
        "proposed_not_in_dictionary": [p for p in proposals[:len(truth)] if p.lower() not in lowered],
        "from_fallback": [c.term for c in result.candidates if c.alternatives_from == "fallback"],
        "top_proposals": [c.to_dict() for c in result.candidates[:2 * len(truth)]],
        "seconds": {"reinforce": round(reinforce_seconds, 1), "discover": round(time.perf_counter() - started, 1)},
    }
    atomic_write_json(args.out, summary)
    lines = ["# Anchored-term discovery vs the world's dictionary", "",
             f"Produced by `{summary['command']}`.", "",
             f"{len(world.anchors)} dictionary terms, {len(truth)} of them occur in the saga text; "
             "recall among the top k proposals: "
             + ", ".join(f"k={k}: {v:.2f}" for k, v in summary["recall_at"].items())
             + "; covered (equal to or part of a proposal): "
             + ", ".join(f"k={k}: {v:.2f}" for k, v in summary["covered_at"].items()), "",
             f"Missed: {', '.join(summary['missed']) or 'none'}", "",
             f"Top-{len(truth)} proposals not in the dictionary: "
             f"{', '.join(summary['proposed_not_in_dictionary']) or 'none'}", "",
             f"Terms whose contexts gave no generic alternative, kept with borrowed ones (fallback): "
             f"{', '.join(summary['from_fallback']) or 'none'}", "",
             f"Top {2 * len(truth)} proposals (why: ranked on its own score, name part of a kept full name, "
             "name extension of a kept name; * = dictionary term):", "",
             "| # | term | count | gain | specificity | score | why | alternatives |", "|---|---|---|---|---|---|---|---|"]
    for rank, c in enumerate(result.candidates[: 2 * len(truth)], start=1):
        mark = " *" if c.term.lower() in lowered else ""
        alternatives = ", ".join(c.alternatives) + (" (fallback)" if c.alternatives_from == "fallback" else "")
        lines.append(f"| {rank} | {c.term}{mark} | {c.count} | {c.gain:.2f} | {c.specificity:.2f} | {c.score:.2f} "
                     f"| {c.why} | {alternatives} |")
    lines.append("")
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(lines))
    print("\n".join(lines))
    print(json.dumps({"recall_at": summary["recall_at"], "covered_at": summary["covered_at"]}))
    return summary


if __name__ == "__main__":
    main()
