""""Who's Sherlock Holmes?": unlearn Sherlock Holmes from a small model trained on Sherlock
Holmes and Shakespeare, and compare with a model trained on Shakespeare alone.

    python bench/bench_sherlock.py [--data ../shared/data/public-domain] [--run runs/sherlock]
        [--out docs/results/sherlock] [--preset tiny] [--steps 1000] [--sherlock-fraction 0.5]
        [--methods whp_auto,whp_hand,npo,grad_diff] [--threads 2]

Steps (every one through the project's own code):
  1. world: ``obliviate.world.from_text.build_text_world`` on sherlock.txt (one source per
     story title heading; the novels cut into parts) and shakespeare.txt (cut by size);
     every Sherlock source is the ``forget`` split, a few Sherlock stories and the last
     Shakespeare part are held out (never trained). Probes: bench/data/sherlock_probes.jsonl.
  2. training (``obliviate.workflows.train.train_run``): ``full`` on Sherlock + Shakespeare and
     ``retain`` on Shakespeare alone, same model size and the same number of optimizer steps.
  3. unlearning (``obliviate.workflows.unlearn.run_unlearning``, the code of ``obliviate
     unlearn``): WHP with automatic anchored-term discovery, WHP with the hand dictionary
     bench/data/sherlock_anchors.json (reusing the reinforced model of the first; soft labels,
     and once more with the paper's hard labels), and other methods (NPO, GradDiff, RMU) on
     the documents with the project's default settings (docs/sweep.md).
  4. measurement of every model: familiarity on the probes (greedy completions naming a
     target term; the docs/design.md judge score; probability of the target term's first token;
     probability mass on the whole terms), perplexity on held-out Shakespeare and held-out
     Sherlock, and the wall time of each step.

Writes ``OUT/sherlock.json`` (every number, the configs, seeds and versions) and
``OUT/sherlock.md``. The pieces live in bench/sherlock/ (one job a module); this file is
the command line. Reruns reuse what the run directory already holds (the world and
models are content-addressed; unlearned models carry a stamp of their settings).
Without the data directory the script prints "skipped: ..." and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

# bench/ holds the ``sherlock`` package: already on the path when this file runs as a script,
# not when it is imported (tests)
BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from sherlock.config import SherlockConfig  # noqa: E402
from sherlock.run import run_bench  # noqa: E402

from obliviate.errors import UserError  # noqa: E402


def parse_args(argv=None) -> SherlockConfig:
    defaults = SherlockConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=defaults.data, help="directory holding sherlock.txt and shakespeare.txt")
    parser.add_argument("--run", type=Path, default=defaults.run, help="run directory (world, tokenizer, models); reused")
    parser.add_argument("--out", type=Path, default=defaults.out, help="where sherlock.md and sherlock.json go")
    parser.add_argument("--probes", type=Path, default=defaults.probes)
    parser.add_argument("--anchors", type=Path, default=defaults.anchors, help="hand anchored-term dictionary for WHP")
    parser.add_argument("--preset", default=defaults.preset, help="model size preset (micro, tiny, small)")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="optimizer steps of the full and retain models")
    parser.add_argument("--learning-rate", type=float, default=None, help="training learning rate (default: the preset's)")
    parser.add_argument("--vocab-size", type=int, default=defaults.vocab_size, help="BPE vocabulary of the run's tokenizer")
    parser.add_argument("--sherlock-fraction", type=float, default=defaults.sherlock_fraction,
                        help="share of each trained story's paragraphs kept (subsampling)")
    parser.add_argument("--methods", default=",".join(defaults.methods),
                        help="unlearning runs: whp_auto, whp_hand, whp_hand_hard, npo, grad_diff, simnpo, rmu, "
                             "grad_ascent")
    parser.add_argument("--whp-reinforce-steps", type=int, default=defaults.whp_reinforce_steps)
    parser.add_argument("--whp-finetune-steps", type=int, default=defaults.whp_finetune_steps)
    parser.add_argument("--method-steps", type=int, default=defaults.method_steps,
                        help="steps of the other methods (default: each method's own)")
    parser.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    args = parser.parse_args(argv)
    if not 0 < args.sherlock_fraction <= 1:
        parser.error("--sherlock-fraction must be in (0, 1]")
    return SherlockConfig(data=args.data, run=args.run, out=args.out, probes=args.probes, anchors=args.anchors,
                          preset=args.preset, steps=args.steps, learning_rate=args.learning_rate,
                          vocab_size=args.vocab_size, sherlock_fraction=args.sherlock_fraction,
                          methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
                          whp_reinforce_steps=args.whp_reinforce_steps, whp_finetune_steps=args.whp_finetune_steps,
                          method_steps=args.method_steps, max_new_tokens=args.max_new_tokens, seed=args.seed,
                          threads=args.threads)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    config = parse_args(argv)
    try:
        run_bench(config)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
