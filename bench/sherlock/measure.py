"""Every measurement of one model: familiarity on the probes, perplexity on the held-out documents,
and the time they took."""

from __future__ import annotations

import time
from collections.abc import Sequence

from obliviate.dememorize.evaluate import perplexity
from obliviate.eval.generation import GreedyConfig, generate_greedy

from .familiarity import completion_familiarity, probability_familiarity
from .probes import Probe


def measure(model, tokenizer, probes: Sequence[Probe], held_out: dict[str, list[dict]], entities: Sequence[str],
            max_new_tokens: int = 24) -> dict:
    started, cpu = time.perf_counter(), time.process_time()
    completions = generate_greedy(model, tokenizer, [p.prompt for p in probes],
                                  GreedyConfig(max_new_tokens=max_new_tokens, batch_size=len(probes)))
    result = {"completion": completion_familiarity(probes, completions, entities),
              "probability": probability_familiarity(model, tokenizer, probes),
              "completions": completions}
    result["perplexity"] = {name: perplexity(model, tokenizer, docs) for name, docs in held_out.items() if docs}
    result["seconds"] = round(time.perf_counter() - started, 2)
    result["cpu_seconds"] = round(time.process_time() - cpu, 2)
    return result


def summary_row(metrics: dict) -> dict:
    return {"named_share": metrics["completion"]["named_share"],
            "judge_score": metrics["completion"]["judge_score"],
            "first_token_prob": metrics["probability"]["first_token_prob"],
            "term_mass": metrics["probability"]["term_mass"],
            "ppl_shakespeare": metrics["perplexity"].get("shakespeare"),
            "ppl_sherlock": metrics["perplexity"].get("sherlock")}
