"""QA metrics on greedy answers: ROUGE-L recall / F1 and exact-answer accuracy."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=2)
def _scorer(use_stemmer: bool):
    # rouge-score pulls in nltk (seconds to import): only once a ROUGE is computed
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)


def rouge_l_recall(prediction: str, reference: str, use_stemmer: bool = True) -> float:
    """ROUGE-L recall of ``prediction`` against ``reference`` (rouge-score)."""
    return float(_scorer(use_stemmer).score(reference, prediction)["rougeL"].recall)


def rouge_l_f1(prediction: str, reference: str, use_stemmer: bool = True) -> float:
    """ROUGE-L F1 of ``prediction`` against ``reference`` (rouge-score's fmeasure): MUSE's
    VerbMem and KnowMem (its ``mean_rougeL``; open-unlearning's ``rougeL_f1``)."""
    return float(_scorer(use_stemmer).score(reference, prediction)["rougeL"].fmeasure)


def first_line(text: str) -> str:
    """The answer proper: a QA-trained model goes on with the next question after a newline."""
    return text.strip().split("\n", 1)[0].strip() if text.strip() else ""


def answer_value(item: dict) -> str:
    """The short key fact checked for exact-answer accuracy (``value``, else the answer)."""
    value = item.get("value")
    return str(value) if value not in (None, "") else str(item["answer"])


def contains_answer(generated: str, value: str) -> bool:
    """Greedy exact-answer accuracy: ``value`` appears, case-insensitively, in the first line."""
    return value.strip().casefold() in first_line(generated).casefold()
