"""Benchmark in-context unlearning (Pawelczyk et al.) with LiRA-Forget on shadow models.

Builds the in-context base model (meta-training, cached in --cache-dir), fine-tunes
--models models on random halves of --points training points, and grades ICUL (s = 2, 4,
6), its ablations (label kept, random point flipped) and gradient ascent by membership
AUC (with 95% bootstrap intervals over points, of the AUC and of its paired difference
from no unlearning) and TPR at FPR 0.1/0.01/0.001, with prediction flip rates and test
accuracy.

    python bench/bench_icul.py [--models 32 --points 160 --threads 2 --cache-dir DIR]
        [--hidden 128 --layers 4 --pretrain-steps 7000 --finetune-lr 5e-3 --finetune-replay 0.1 --finetune-lora-rank 8]

Training runs on a GPU when one is visible (the HF Trainer picks it), scoring follows the model.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from obliviate.cli.icul import format_table  # noqa: E402
from obliviate.icul.experiment import IculExperimentConfig, base_diagnostics, run_experiment  # noqa: E402
from obliviate.icul.models import FinetuneConfig, PretrainConfig, TinyLlamaSpec  # noqa: E402
from obliviate.io import atomic_write_json  # noqa: E402
from obliviate.world.classification import generate_classification, load_classification  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=160)
    parser.add_argument("--test-points", type=int, default=60)
    parser.add_argument("--models", type=int, default=32)
    parser.add_argument("--shots", type=int, nargs="+", default=[2, 4, 6])
    parser.add_argument("--pretrain-steps", type=int, default=PretrainConfig.steps)
    parser.add_argument("--hidden", type=int, default=TinyLlamaSpec.hidden_size, help="base model width")
    parser.add_argument("--layers", type=int, default=TinyLlamaSpec.num_hidden_layers)
    parser.add_argument("--heads", type=int, default=TinyLlamaSpec.num_attention_heads)
    parser.add_argument("--max-examples", type=int, default=PretrainConfig.max_examples,
                        help="most labelled lines in a meta-training sequence (ICUL prompts have shots + 2)")
    parser.add_argument("--repeat-rate", type=float, default=PretrainConfig.repeat_rate)
    parser.add_argument("--copy-rate", type=float, default=PretrainConfig.copy_rate)
    parser.add_argument("--train-all-tokens", action=argparse.BooleanOptionalAction,
                        default=PretrainConfig.train_all_tokens,
                        help="meta-train with the language-model loss on every token (else labels and repeats)")
    parser.add_argument("--pretrain-lr", type=float, default=PretrainConfig.learning_rate)
    parser.add_argument("--base-only", action="store_true",
                        help="only build (or load) the base model and write its in-context diagnostics")
    parser.add_argument("--finetune-epochs", type=int, default=FinetuneConfig.epochs)
    parser.add_argument("--finetune-lr", type=float, default=FinetuneConfig.learning_rate)
    parser.add_argument("--finetune-replay", type=float, default=FinetuneConfig.replay,
                        help="meta-training sequences mixed into each model's fine-tuning, per member sequence")
    parser.add_argument("--finetune-pack", type=int, default=FinetuneConfig.pack,
                        help="member lines per fine-tuning sequence")
    parser.add_argument("--finetune-lora-rank", type=int, default=FinetuneConfig.lora_rank,
                        help="fine-tune a LoRA adapter of this rank instead of every weight (0: full)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples of the points for AUC 95%% intervals")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--cache-dir", type=Path, default=Path("bench/results/.cache"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/icul.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    path = generate_classification(args.seed, 400, 200, args.cache_dir / f"classification-{args.seed}")
    data = load_classification(path)
    config = IculExperimentConfig(
        n_points=args.points, n_test=args.test_points, n_models=args.models, shots=args.shots, seed=args.seed,
        bootstrap=args.bootstrap,
        model=TinyLlamaSpec(hidden_size=args.hidden, intermediate_size=2 * args.hidden, num_hidden_layers=args.layers,
                            num_attention_heads=args.heads),
        pretrain=PretrainConfig(steps=args.pretrain_steps, max_examples=args.max_examples,
                                repeat_rate=args.repeat_rate, copy_rate=args.copy_rate,
                                learning_rate=args.pretrain_lr, train_all_tokens=args.train_all_tokens),
        finetune=FinetuneConfig(epochs=args.finetune_epochs, learning_rate=args.finetune_lr,
                                replay=args.finetune_replay, lora_rank=args.finetune_lora_rank,
                                pack=args.finetune_pack),
    )
    if args.base_only:
        result = base_diagnostics(data, config, args.cache_dir)
        result["device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
        atomic_write_json(args.out, result)
        print(json.dumps(result["base_in_context"], indent=1))
        return
    result = run_experiment(data, config, progress=True, cache_dir=args.cache_dir)
    result["device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    atomic_write_json(args.out, result)
    print(format_table(result))
    for name in ("base_in_context", "finetuned_in_context"):
        print(name, {key: round(value, 3) for key, value in result[name].items() if key.startswith("flip_rate")})
    print(f"timing {result['timing']} on {result['device']}; wrote {args.out}")


if __name__ == "__main__":
    main()
