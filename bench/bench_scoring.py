"""Scoring engine vs a naive per-item loop: tokens per second on the same model and items.

    python bench/bench_scoring.py [--items 300] [--batch-size 32] [--threads 1] [--out bench/results/scoring.json]

A tiny random Llama and a BPE tokenizer are built in-process (nothing downloaded); the
items are QA-formatted (prompt, continuation) pairs of very different lengths. Both
paths score the same items; the script checks they agree before reporting speed.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from pathlib import Path

import torch

WORDS = ("river town author novel award poet city garden winter summer letter bridge market harbour mountain "
         "teacher father mother painter violin forest lantern castle island journey silver golden quiet").split()


def build_tokenizer(texts: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def make_items(count: int, seed: int) -> list[tuple[str, str]]:
    from obliviate.data.format import qa_continuation, qa_prompt

    rng = random.Random(seed)
    items = []
    for _ in range(count):
        question = "What " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) + "?"
        answer = " ".join(rng.choice(WORDS) for _ in range(rng.choice([1, 3, 8, 20, 40]))).capitalize() + "."
        items.append((qa_prompt(question), qa_continuation(answer)))
    return items


def naive_loop(model, tokenizer, pairs) -> list[float]:
    """What the engine replaces: per item, tokenize, one unpadded forward, log-softmax,
    gather the continuation's log-probs (vectorised over tokens: only the items loop)."""
    nlls = []
    with torch.inference_mode():
        for prompt, continuation in pairs:
            start = len(tokenizer(prompt)["input_ids"])
            ids = torch.tensor([tokenizer(prompt + continuation)["input_ids"]])
            log_probs = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
            targets = ids[0, 1:]
            token_lp = log_probs.gather(-1, targets[:, None])[:, 0][start - 1:]
            nlls.append(-token_lp.sum().item())
    return nlls


def best_time(function, repeats: int) -> tuple[float, float, object]:
    """Fastest wall-clock and process-CPU seconds over ``repeats`` runs (the machine is shared:
    the minimum is the least disturbed run), and the last result."""
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = function()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus), result


def time_full_evaluation(run_dir: Path) -> dict:
    """Wall time of every metric on a run's full model (the retain model's reference cached first)."""
    from obliviate.eval.evaluator import EvalConfig, evaluate
    from obliviate.eval.reference import reference_for
    from obliviate.models.loading import load_model_and_tokenizer
    from obliviate.run import RunDir
    from obliviate.world import load_world

    run = RunDir.open(run_dir, create=False)
    world = load_world(run.world_dir)
    reference = reference_for(run.retain_model("forget10"), world, "forget10", EvalConfig())
    model, tokenizer = load_model_and_tokenizer(run.full_model)
    started = time.perf_counter()
    summary = evaluate(model, tokenizer, world, "forget10", reference=reference)["summary"]
    return {"run": str(run_dir), "world": world.manifest.get("preset"), "qa_items": len(world.qa),
            "seconds": round(time.perf_counter() - started, 2), "threads": torch.get_num_threads(),
            "forget_quality": summary["forget_quality"], "model_utility": summary["model_utility"]}


def main(argv: list[str] | None = None) -> dict:
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM

    from obliviate.eval.scoring import ScoringConfig, encode_pairs, score_continuations

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden-size", type=int, default=32, help="32: the tests' tiny Llama; 64: the micro preset")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "scoring.json")
    parser.add_argument("--run", type=Path, default=None,
                        help="Also time a full evaluation of RUN/models/full on RUN/world (e.g. a tiny run).")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    pairs = make_items(args.items, args.seed)
    tokenizer = build_tokenizer([p + c for p, c in pairs], vocab_size=1000)
    torch.manual_seed(args.seed)
    heads = max(2, args.hidden_size // 16)
    config = LlamaConfig(hidden_size=args.hidden_size, intermediate_size=4 * args.hidden_size,
                         num_hidden_layers=args.layers, num_attention_heads=heads, num_key_value_heads=heads, vocab_size=len(tokenizer), max_position_embeddings=512,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=True)
    model = LlamaForCausalLM(config).eval()
    tokens = sum(len(e.input_ids) for e in encode_pairs(tokenizer, pairs))
    scoring = ScoringConfig(batch_size=args.batch_size)

    score_continuations(model, tokenizer, pairs[:8], scoring)  # warm-up both paths
    naive_loop(model, tokenizer, pairs[:8])
    engine_seconds, engine_cpu, engine = best_time(lambda: score_continuations(model, tokenizer, pairs, scoring),
                                                   args.repeats)
    naive_seconds, naive_cpu, naive = best_time(lambda: naive_loop(model, tokenizer, pairs), args.repeats)

    max_diff = max(abs(e.nll_sum - n) for e, n in zip(engine, naive))
    if max_diff > 1e-3:
        raise SystemExit(f"engine and naive loop disagree: max |NLL difference| = {max_diff}")
    result = {
        "items": len(pairs),
        "tokens": tokens,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "engine_seconds": round(engine_seconds, 4),
        "naive_seconds": round(naive_seconds, 4),
        "engine_tokens_per_s": round(tokens / engine_seconds, 1),
        "naive_tokens_per_s": round(tokens / naive_seconds, 1),
        "speedup": round(naive_seconds / engine_seconds, 2),
        "engine_cpu_seconds": round(engine_cpu, 4),
        "naive_cpu_seconds": round(naive_cpu, 4),
        "speedup_cpu_time": round(naive_cpu / engine_cpu, 2),
        "repeats": args.repeats,
        "max_abs_nll_diff": max_diff,
        "model": {"hidden_size": args.hidden_size, "layers": args.layers, "vocab_size": len(tokenizer),
                  "parameters": sum(p.numel() for p in model.parameters())},
        "device": "cpu",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "machine": platform.machine(),
    }
    if args.run is not None:
        result["full_evaluation"] = time_full_evaluation(args.run)
    from obliviate.io import atomic_write_json

    atomic_write_json(args.out, result)
    print(json.dumps(result, indent=2))
    print(f"-> {args.out}")
    return result


if __name__ == "__main__":
    main()
