"""Scoring engine vs a naive per-item loop: tokens per second on the same model and items.

    python bench/bench_scoring.py --run RUN [--threads 1,2] [--out bench/results/scoring.json]
    python bench/bench_scoring.py            # no run: a random tiny Llama on synthetic QA items

With ``--run`` the workload is exactly what a full evaluation scores: the (prompt,
continuation) pairs ``evaluate`` hands the engine for RUN/models/full on RUN/world
(answers, paraphrases and 5 perturbations per question, familiarity probes, documents),
on that model. Without it, a random Llama the size of the tiny preset scores synthetic
QA items with the same shape (7 continuations per question). The naive loop scores one
pair per unpadded forward; the engine is also timed without prompt sharing (ablation).
Every path must give the same NLLs before any speed is reported. Timings are the fastest
of ``--repeats`` runs (wall and process CPU time), all measured in this one process.
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


def synthetic_pairs(questions: int, seed: int) -> list[tuple[str, str]]:
    """Evaluation-shaped items: per question, an answer, a paraphrase and 5 perturbations."""
    from obliviate.data.format import qa_continuation, qa_prompt

    rng = random.Random(seed)
    pairs = []
    for _ in range(questions):
        prompt = qa_prompt("What " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 10))) + "?")
        for _ in range(7):
            answer = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 9))).capitalize() + "."
            pairs.append((prompt, qa_continuation(answer)))
    return pairs


def synthetic_workload(questions: int, seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    pairs = synthetic_pairs(questions, seed)
    tokenizer = build_tokenizer([p + c for p, c in pairs], vocab_size=2048)
    torch.manual_seed(seed)
    config = LlamaConfig(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=4, vocab_size=len(tokenizer), max_position_embeddings=512,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=True)
    return LlamaForCausalLM(config).eval(), tokenizer, pairs, "synthetic QA, random Llama (tiny preset size)"


def evaluation_workload(run_dir: Path, forget: str):
    """The run's full model and the pairs ``evaluate`` scores with it (captured, not re-derived)."""
    import obliviate.eval.evaluator as evaluator
    from obliviate.models.loading import load_model_and_tokenizer
    from obliviate.workflows.run_dir import RunDir
    from obliviate.world import load_world

    run = RunDir.open(run_dir, create=False)
    world = load_world(run.world_dir)
    model, tokenizer = load_model_and_tokenizer(run.full_model)
    captured: list[tuple[str, str]] = []
    engine = evaluator.score_continuations

    def capture(model, tokenizer, pairs, config, append_eos=False):
        captured.extend(pairs)
        return engine(model, tokenizer, pairs, config, append_eos)

    evaluator.score_continuations = capture
    try:
        evaluator.evaluate(model, tokenizer, world, forget)
    finally:
        evaluator.score_continuations = engine
    return model, tokenizer, captured, f"evaluation of {run.full_model} on {world.manifest.get('preset')}/{forget}"


def naive_loop(model, tokenizer, encoded) -> list[float]:
    """What the engine replaces: per item, one unpadded forward, log-softmax, the
    continuation's per-token log-probs and argmax-match flags (the engine's outputs;
    vectorised over tokens: only the items loop)."""
    nlls = []
    with torch.inference_mode():
        for item in encoded:
            ids = torch.tensor([item.input_ids])
            log_probs = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)[item.start - 1:]
            targets = ids[0, item.start:]
            token_lp = log_probs.gather(-1, targets[:, None])[:, 0].numpy()
            argmax_match = (log_probs.argmax(-1) == targets).numpy()  # noqa: F841 (computed like the engine's)
            nlls.append(-float(token_lp.sum(dtype="float64")))
    return nlls


def best_time(function, repeats: int) -> tuple[float, float, object]:
    """Fastest wall-clock and process-CPU seconds over ``repeats`` runs (the machine may be
    shared: the minimum is the least disturbed run), and the last result."""
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = function()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus), result


def compare(model, tokenizer, pairs, threads: int, batch_size: int, repeats: int) -> dict:
    from obliviate.eval.scoring import ScoringConfig, encode_pairs, score_encoded

    torch.set_num_threads(threads)
    encoded = encode_pairs(tokenizer, pairs)
    tokens = sum(len(e.input_ids) for e in encoded)
    paths = {
        "engine": lambda: [s.nll_sum for s in score_encoded(model, tokenizer, encoded, ScoringConfig(batch_size))],
        "engine_no_prompt_sharing": lambda: [s.nll_sum for s in score_encoded(
            model, tokenizer, encoded, ScoringConfig(batch_size, share_prompts=False))],
        "naive": lambda: naive_loop(model, tokenizer, encoded),
    }
    timings, results = {}, {}
    for name, function in paths.items():
        function()  # warm-up (and the engine's one-time packing check)
        wall, cpu, results[name] = best_time(function, repeats)
        timings[name] = {"seconds": round(wall, 4), "cpu_seconds": round(cpu, 4),
                         "tokens_per_s": round(tokens / wall, 1)}
    for name in ("engine", "engine_no_prompt_sharing"):
        diff = max(abs(a - b) for a, b in zip(results[name], results["naive"]))
        if diff > 1e-3:
            raise SystemExit(f"{name} and the naive loop disagree: max |NLL difference| = {diff}")
        timings[name]["max_abs_nll_diff_vs_naive"] = diff
    naive = timings["naive"]
    return {
        "threads": threads, "items": len(pairs), "tokens": tokens, "batch_size": batch_size, **timings,
        "speedup": round(naive["seconds"] / timings["engine"]["seconds"], 2),
        "speedup_cpu_time": round(naive["cpu_seconds"] / timings["engine"]["cpu_seconds"], 2),
        "speedup_without_prompt_sharing": round(naive["seconds"] / timings["engine_no_prompt_sharing"]["seconds"], 2),
    }


def time_full_evaluation(run_dir: Path, forget: str) -> dict:
    """Wall time of every metric on a run's full model (the retain model's reference cached first)."""
    from obliviate.eval.evaluator import EvalConfig, evaluate
    from obliviate.models.loading import load_model_and_tokenizer
    from obliviate.workflows.evaluate import reference_for
    from obliviate.workflows.run_dir import RunDir
    from obliviate.world import load_world

    run = RunDir.open(run_dir, create=False)
    world = load_world(run.world_dir)
    reference = reference_for(run.retain_model(forget), world, forget, EvalConfig())
    model, tokenizer = load_model_and_tokenizer(run.full_model)
    started = time.perf_counter()
    summary = evaluate(model, tokenizer, world, forget, reference=reference)["summary"]
    return {"run": str(run_dir), "world": world.manifest.get("preset"), "qa_items": len(world.qa),
            "seconds": round(time.perf_counter() - started, 2), "threads": torch.get_num_threads(),
            "forget_quality": summary["forget_quality"], "model_utility": summary["model_utility"]}


def main(argv: list[str] | None = None) -> dict:
    import transformers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None,
                        help="Score what a full evaluation of RUN/models/full scores (e.g. a tiny run), and time that evaluation.")
    parser.add_argument("--forget", default="forget10")
    parser.add_argument("--questions", type=int, default=300, help="Synthetic workload size (without --run).")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", default="1", help="Comma-separated torch thread counts, e.g. 1,2.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "scoring.json")
    args = parser.parse_args(argv)

    if args.run is not None:
        model, tokenizer, pairs, workload = evaluation_workload(args.run, args.forget)
    else:
        model, tokenizer, pairs, workload = synthetic_workload(args.questions, args.seed)
    result = {
        "workload": workload,
        "model": {"hidden_size": model.config.hidden_size, "layers": model.config.num_hidden_layers,
                  "vocab_size": model.config.vocab_size, "parameters": sum(p.numel() for p in model.parameters())},
        "by_threads": [compare(model, tokenizer, pairs, int(t), args.batch_size, args.repeats)
                       for t in args.threads.split(",")],
        "repeats": args.repeats, "device": "cpu", "torch": torch.__version__,
        "transformers": transformers.__version__, "machine": platform.machine(),
    }
    if args.run is not None:
        result["full_evaluation"] = time_full_evaluation(args.run, args.forget)
    from obliviate.io import atomic_write_json

    atomic_write_json(args.out, result)
    print(json.dumps(result, indent=2))
    for entry in result["by_threads"]:
        print(f"{entry['threads']} thread(s): engine {entry['engine']['tokens_per_s']:.0f} tok/s, naive "
              f"{entry['naive']['tokens_per_s']:.0f} tok/s -> {entry['speedup']}x (CPU time {entry['speedup_cpu_time']}x; "
              f"without prompt sharing {entry['speedup_without_prompt_sharing']}x)")
    print(f"-> {args.out}")
    return result


if __name__ == "__main__":
    main()
