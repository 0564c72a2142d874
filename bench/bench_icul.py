"""Benchmark in-context unlearning (Pawelczyk et al.) with LiRA-Forget on shadow models.

Builds the in-context base model (meta-training, cached in --cache-dir), fine-tunes
--models models on random halves of --points training points, and grades ICUL (s = 2, 4,
6), its ablations (label kept, random point flipped) and gradient ascent by membership
AUC (with 95% bootstrap intervals over points, of the AUC and of its paired difference
from no unlearning) and TPR at FPR 0.1/0.01/0.001, with prediction flip rates and test
accuracy.

    OMP_NUM_THREADS=1 python bench/bench_icul.py [--models 24 --points 120 --pretrain-steps 10000]
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from obliviate.icul.commands import format_table  # noqa: E402
from obliviate.icul.experiment import IculExperimentConfig, run_experiment  # noqa: E402
from obliviate.icul.models import FinetuneConfig, PretrainConfig  # noqa: E402
from obliviate.io import atomic_write_json  # noqa: E402
from obliviate.world.classification import generate_classification, load_classification  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=120)
    parser.add_argument("--test-points", type=int, default=60)
    parser.add_argument("--models", type=int, default=24)
    parser.add_argument("--shots", type=int, nargs="+", default=[2, 4, 6])
    parser.add_argument("--pretrain-steps", type=int, default=10000)
    parser.add_argument("--finetune-epochs", type=int, default=FinetuneConfig.epochs)
    parser.add_argument("--finetune-lr", type=float, default=FinetuneConfig.learning_rate)
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples of the points for AUC 95%% intervals")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, default=Path("bench/results/.cache"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/icul.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    path = generate_classification(args.seed, 400, 200, args.cache_dir / f"classification-{args.seed}")
    data = load_classification(path)
    config = IculExperimentConfig(
        n_points=args.points, n_test=args.test_points, n_models=args.models, shots=args.shots, seed=args.seed,
        bootstrap=args.bootstrap,
        pretrain=PretrainConfig(steps=args.pretrain_steps),
        finetune=FinetuneConfig(epochs=args.finetune_epochs, learning_rate=args.finetune_lr),
    )
    result = run_experiment(data, config, progress=True, cache_dir=args.cache_dir)
    atomic_write_json(args.out, result)
    print(format_table(result))
    print(f"timing {result['timing']}; wrote {args.out}")


if __name__ == "__main__":
    main()
