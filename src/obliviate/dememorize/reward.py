"""The dememorization reward (Kassem et al.): minus the similarity between a sampled
continuation and the true suffix, so the policy learns to stop reproducing it.

Similarities (1.0 = identical):
- ``rouge_l``: ROUGE-L F1 (rouge-score, stemming off);
- ``bleu``: sentence BLEU-4 on whitespace tokens (nltk, smoothing method 1 so that short
  texts without 4-gram overlap do not collapse to 0 by construction).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Sequence

from obliviate.errors import UserError

SIMILARITIES = ("rouge_l", "bleu")


@lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(candidate: str, reference: str) -> float:
    return float(_rouge().score(reference, candidate)["rougeL"].fmeasure)


def bleu(candidate: str, reference: str) -> float:
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    hypothesis, references = candidate.split(), [reference.split()]
    if not hypothesis or not references[0]:
        return float(hypothesis == references[0])
    return float(sentence_bleu(references, hypothesis, smoothing_function=SmoothingFunction().method1))


def similarity_function(name: str) -> Callable[[str, str], float]:
    if name == "rouge_l":
        return rouge_l
    if name == "bleu":
        return bleu
    raise UserError(f"unknown similarity {name!r}; valid: {', '.join(SIMILARITIES)}")


def make_reward(similarity: str = "rouge_l") -> Callable[..., list[float]]:
    """A TRL reward function: ``reward(prompts, completions, suffix, **kwargs) -> [-sim]``.

    ``suffix`` is the dataset column holding each prompt's true continuation (TRL passes
    dataset columns to reward functions by name, repeated per generation).
    """
    similar = similarity_function(similarity)

    def negative_similarity(prompts: Sequence[str], completions: Sequence[str], suffix: Sequence[str],
                            **_: object) -> list[float]:
        return [-similar(completion, reference) for completion, reference in zip(completions, suffix)]

    negative_similarity.__name__ = f"negative_{similarity}"
    return negative_similarity
