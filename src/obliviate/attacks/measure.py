"""How much of a set of facts a model recalls under given prompts, and membership inference.

Every attack ends here: the prompts change (in-context shots, jailbreak prefixes, a GCG
suffix) or the weights change (relearning), and recall is graded the same way, through
the evaluation harness's scoring engine, greedy generation and metric functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from obliviate.attacks.items import perturbed_values, template_parts
from obliviate.data.format import ChatOptions, QAFormat, qa_format
from obliviate.eval.generation import GreedyConfig, generate_greedy
from obliviate.eval.metrics.mia import attack_aucs, attack_scores
from obliviate.eval.metrics.qa import answer_value, contains_answer, first_line, rouge_l_recall
from obliviate.eval.metrics.truth_ratio import forget_truth_ratio, retain_truth_ratio, truth_ratio
from obliviate.eval.scoring import ScoringConfig, score_continuations


@dataclass
class MeasureConfig:
    batch_size: int = 32          # scoring and generation batch size
    max_new_tokens: int = 24      # greedy answer length (one-line QA answers)
    truth_ratio: bool = True      # also score the paraphrased and perturbed answers
    generate: bool = True         # greedy answers for accuracy and ROUGE
    value_scores: bool = True     # score the key value in its slot of the answer (and the wrong values)
    mink_k: float = 0.4           # Min-K% / Min-K%++ fraction (docs/design.md)
    # QA in the tokenizer's chat template (None: when the tokenizer has one; `obliviate attack`
    # sets it as the attacked model was trained)
    chat_template: bool | None = None
    chat_options: ChatOptions = ChatOptions()   # its system prompt and date


def measure_format(tokenizer, config: MeasureConfig) -> QAFormat:
    """The QA format every attack asks and grades in."""
    return qa_format(tokenizer, config.chat_template, config.chat_options)


def measure_scoring(config: MeasureConfig, fmt: QAFormat, minkpp: bool = False) -> ScoringConfig:
    return ScoringConfig(batch_size=config.batch_size, minkpp=minkpp, add_special_tokens=fmt.add_special_tokens)


@dataclass
class Recall:
    """Per-item recall of ``items`` under ``prompts``."""

    ids: list[str]
    avg_nll: np.ndarray
    correct: np.ndarray | None = None     # greedy answer contains the item's value
    rouge: np.ndarray | None = None       # ROUGE-L recall of the greedy answer's first line
    truth_ratio: np.ndarray | None = None  # per-item TR (docs/design.md)
    value_prob: np.ndarray | None = None   # exp(-avg NLL) of the value after the question and the answer's
                                           # words before it (NaN: the answer has no such slot)
    value_choice: np.ndarray | None = None  # 1 when the value beats every perturbed value in that slot, else 0
    answers: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, float | int | None]:
        """``accuracy``, ``prob`` (mean exp(-avg_nll)), ``rouge``, ``truth_ratio`` (forget form,
        1 = cannot tell true from false), ``truth_score`` (retain form, 1 = knows), and the
        value-slot scores ``value_prob`` and ``value_choice`` (None when no item has a slot).

        The value-slot scores grade the fact alone: relearning the answer's template (the
        person's name, "was born in") raises ``prob`` of any model, ``value_prob`` far less."""
        return {
            "n": len(self.ids),
            "accuracy": None if self.correct is None else float(self.correct.mean()),
            "prob": float(np.exp(-self.avg_nll).mean()),
            "rouge": None if self.rouge is None else float(self.rouge.mean()),
            "truth_ratio": None if self.truth_ratio is None else forget_truth_ratio(self.truth_ratio),
            "truth_score": None if self.truth_ratio is None else retain_truth_ratio(self.truth_ratio),
            "value_prob": _nanmean(self.value_prob),
            "value_choice": _nanmean(self.value_choice),
        }


def _nanmean(values: np.ndarray | None) -> float | None:
    if values is None or np.all(np.isnan(values)):
        return None
    return float(np.nanmean(values))


def value_slot(prompt: str, item: dict, fmt: QAFormat) -> tuple[str, str, list[str]] | None:
    """``(prompt + answer words before the value, " value", [" wrong value", ...])`` or None."""
    parts = template_parts(item)
    if parts is None or not parts[0].strip() or not parts[0].endswith(" "):
        return None
    wrong = perturbed_values(item)
    if not wrong:
        return None
    before, value, _ = parts
    return prompt + fmt.answer_start(before).rstrip(), " " + value, [" " + w for w in wrong]


def default_prompts(items: Sequence[dict], fmt: QAFormat) -> list[str]:
    return [fmt.prompt(item["question"]) for item in items]


def measure_recall(model, tokenizer, items: Sequence[dict], prompts: Sequence[str] | None = None,
                   config: MeasureConfig = MeasureConfig()) -> Recall:
    """Score each item's answer (and, for the truth ratio, its paraphrased and perturbed
    answers) after its prompt in one batched call, and grade its greedy answer."""
    fmt = measure_format(tokenizer, config)
    prompts = list(prompts) if prompts is not None else default_prompts(items, fmt)
    if len(prompts) != len(items):
        raise ValueError(f"{len(prompts)} prompts for {len(items)} items")
    was_training = model.training
    model.eval()
    try:
        pairs: list[tuple[str, str]] = []
        for item, prompt in zip(items, prompts):
            pairs.append((prompt, fmt.continuation(item["answer"])))
            if config.truth_ratio:
                pairs.append((prompt, fmt.continuation(item["paraphrased_answer"])))
                pairs.extend((prompt, fmt.continuation(p)) for p in item["perturbed_answers"])
        slots = [value_slot(prompt, item, fmt) if config.value_scores else None
                 for item, prompt in zip(items, prompts)]
        for slot in slots:
            if slot is not None:
                pairs.extend((slot[0], continuation) for continuation in [slot[1], *slot[2]])
        scores = score_continuations(model, tokenizer, pairs, measure_scoring(config, fmt))
        avg_nll, para, pert = [], [], []
        cursor = 0
        for item in items:
            avg_nll.append(scores[cursor].avg_nll)
            cursor += 1
            if config.truth_ratio:
                para.append(scores[cursor].avg_nll)
                count = len(item["perturbed_answers"])
                pert.append([s.avg_nll for s in scores[cursor + 1: cursor + 1 + count]])
                cursor += 1 + count
        recall = Recall(ids=[str(item["id"]) for item in items], avg_nll=np.asarray(avg_nll, dtype=np.float64))
        if config.value_scores:
            recall.value_prob = np.full(len(items), np.nan)
            recall.value_choice = np.full(len(items), np.nan)
            for index, slot in enumerate(slots):
                if slot is None:
                    continue
                nll = np.array([s.avg_nll for s in scores[cursor: cursor + 1 + len(slot[2])]])
                cursor += 1 + len(slot[2])
                recall.value_prob[index] = np.exp(-nll[0])
                recall.value_choice[index] = float(nll[0] < nll[1:].min())
        if config.truth_ratio:
            recall.truth_ratio = truth_ratio(para, pert)
        if config.generate:
            greedy = GreedyConfig(max_new_tokens=config.max_new_tokens, batch_size=config.batch_size,
                                  stop_strings=("\n",), add_special_tokens=fmt.add_special_tokens)
            answers = [first_line(text) for text in generate_greedy(model, tokenizer, prompts, greedy)]
            recall.answers = answers
            recall.correct = np.array([contains_answer(a, answer_value(item)) for a, item in zip(answers, items)],
                                      dtype=bool)
            recall.rouge = np.array([rouge_l_recall(a, str(item["answer"])) for a, item in zip(answers, items)],
                                    dtype=np.float64)
        return recall
    finally:
        model.train(was_training)


def membership_scores(model, tokenizer, items: Sequence[dict], prompts: Sequence[str] | None = None,
                      config: MeasureConfig = MeasureConfig()) -> list[dict[str, float]]:
    """LOSS / ZLib / Min-K% / Min-K%++ scores of each item's answer after its prompt."""
    fmt = measure_format(tokenizer, config)
    prompts = list(prompts) if prompts is not None else default_prompts(items, fmt)
    was_training = model.training
    model.eval()
    try:
        continuations = [fmt.continuation(item["answer"]) for item in items]
        scores = score_continuations(model, tokenizer, list(zip(prompts, continuations)),
                                     measure_scoring(config, fmt, minkpp=True))
    finally:
        model.train(was_training)
    return [attack_scores(s.avg_nll, text, s.logprobs, s.minkpp, config.mink_k) for s, text in zip(scores, continuations)]


def membership_aucs(model, tokenizer, members: Sequence[dict], nonmembers: Sequence[dict],
                    member_prompts: Sequence[str] | None = None, nonmember_prompts: Sequence[str] | None = None,
                    config: MeasureConfig = MeasureConfig()) -> dict[str, float] | None:
    """MIA AUCs (``mia_loss`` ...) of forget items (members) vs holdout items; None
    when either side is empty."""
    if not members or not nonmembers:
        return None
    member = membership_scores(model, tokenizer, members, member_prompts, config)
    nonmember = membership_scores(model, tokenizer, nonmembers, nonmember_prompts, config)
    return {f"mia_{name}": value for name, value in attack_aucs(member, nonmember).items()}
