"""Familiarity on the probes: completions naming a target term (and the docs/design.md judge score), and the
probability the model puts on the target terms."""

from __future__ import annotations

import math
from collections.abc import Sequence

from obliviate.eval.metrics.familiarity import FamiliarityJudge, familiarity_score, target_mass, term_continuation
from obliviate.eval.scoring import encode_pairs, model_max_length, score_encoded

from .probes import Probe


def names_target(probe: Probe, completion: str) -> bool:
    """The completion names one of the probe's target terms (whole word, not already in the prompt)."""
    return FamiliarityJudge(entities=probe.target_terms).grade(probe.prompt, completion) == 3


def completion_familiarity(probes: Sequence[Probe], completions: Sequence[str], entities: Sequence[str]) -> dict:
    """``named_share``: share of completions naming their probe's target term;
    ``judge_score``: docs/design.md's ``(5 * #3 + #2) / N`` with the Sherlock entity list as judge."""
    if len(probes) != len(completions):
        raise ValueError(f"{len(probes)} probes but {len(completions)} completions")
    judge = FamiliarityJudge(entities=sorted(set(entities), key=lambda t: (-len(t), t)))
    named = [names_target(p, c) for p, c in zip(probes, completions)]
    grades = [judge.grade(p.prompt, c, p.references[0] if p.references else "") for p, c in zip(probes, completions)]
    return {"named_share": sum(named) / len(named), "judge_score": familiarity_score(grades),
            "named": named, "grades": grades}


def probability_familiarity(model, tokenizer, probes: Sequence[Probe]) -> dict:
    """Per probe: the probability of the target terms' first tokens right after the prompt
    (summed over distinct first tokens) and the mass on the whole terms (``target_mass``)."""
    pairs, owner = [], []
    for index, probe in enumerate(probes):
        for term in probe.target_terms:
            pairs.append((probe.prompt, term_continuation(probe.prompt, term)))
            owner.append(index)
    encoded = encode_pairs(tokenizer, pairs, model_max_length(model, None))
    scores = score_encoded(model, tokenizer, encoded)
    first: list[dict[int, float]] = [{} for _ in probes]
    nlls: list[list[float]] = [[] for _ in probes]
    for index, pair, score in zip(owner, encoded, scores):
        first[index][pair.input_ids[pair.start]] = math.exp(float(score.logprobs[0]))
        nlls[index].append(score.nll_sum)
    first_prob = [min(1.0, sum(p.values())) for p in first]
    mass = [target_mass(n) for n in nlls]
    return {"first_token_prob": sum(first_prob) / len(first_prob), "term_mass": sum(mass) / len(mass),
            "per_probe_first_token": first_prob, "per_probe_mass": mass}
