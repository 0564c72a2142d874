"""In-context relearning: put other facts (or passages) of a forgotten source in the prompt
and ask for one of its facts that the context does not state.

The shots never contain the target's value, so a model answers correctly only if the
context reawakens knowledge it still holds. The same prompts on the retain model show
what the context alone gives away.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Sequence

from obliviate.attacks.items import group_by_source, strip_facts
from obliviate.attacks.measure import MeasureConfig, measure_format, measure_recall, membership_aucs
from obliviate.data.format import PLAIN, QAFormat, qa_text
from obliviate.errors import UserError
from obliviate.eval.metrics.qa import answer_value

CONTEXTS = ("qa", "passages")


@dataclass
class InContextConfig:
    shots: list[int] = field(default_factory=lambda: [0, 1, 2, 4])  # context sizes graded
    context: str = "qa"          # "qa": other QA pairs of the source (qa_text); "passages": its document paragraphs
    separator: str = "\n\n"      # between shots, and between the context and the question
    mia: bool = True             # MIA AUC with the same kind of context on forget and holdout items
    seed: int = 0


def validate_in_context(config: InContextConfig) -> list[int]:
    if config.context not in CONTEXTS:
        raise UserError(f"icl context must be one of {', '.join(CONTEXTS)}, got {config.context!r}")
    if not config.shots or any(int(n) < 0 for n in config.shots):
        raise UserError(f"icl shots must be a non-empty list of counts >= 0, got {list(config.shots)}")
    return sorted({int(n) for n in config.shots})


def _pool_qa(target: dict, source_items: Sequence[dict]) -> list[str]:
    value = answer_value(target).casefold()
    return [qa_text(other["question"], other["answer"]) for other in source_items
            if other["id"] != target["id"] and value not in str(other["answer"]).casefold()]


def _pool_passages(target: dict, source_docs: Sequence[dict]) -> list[str]:
    value = answer_value(target)
    paragraphs = []
    for doc in source_docs:
        for paragraph in strip_facts(doc["text"], [value]).split("\n\n"):
            # QA-form paragraphs are the "qa" context; passages are the narrative text
            if paragraph.strip() and not paragraph.lstrip().startswith("Question:"):
                paragraphs.append(paragraph.strip())
    return paragraphs


def build_context_prompts(items: Sequence[dict], source_items: Sequence[dict], source_docs: Sequence[dict],
                          shots: int, config: InContextConfig, fmt: QAFormat = PLAIN) -> tuple[list[str], float]:
    """One prompt per item with up to ``shots`` context pieces of its own source (seeded
    choice per item; inside the user turn in the chat format); also the mean number of
    pieces actually used."""
    items_by_source = group_by_source(source_items)
    docs_by_source: dict[int, list[dict]] = {}
    for doc in source_docs:
        docs_by_source.setdefault(int(doc["source_id"]), []).append(doc)
    prompts, used = [], []
    for item in items:
        source = int(item["source_id"])
        if config.context == "qa":
            pool = _pool_qa(item, items_by_source.get(source, []))
        else:
            pool = _pool_passages(item, docs_by_source.get(source, []))
        rng = random.Random(f"obliviate-icl:{config.seed}:{item['id']}")
        chosen = rng.sample(pool, min(shots, len(pool)))
        used.append(len(chosen))
        context = config.separator.join(chosen) + config.separator if chosen else ""
        prompts.append(fmt.prompt(item["question"], context))
    return prompts, (sum(used) / len(used) if used else 0.0)


def in_context_attack(models: dict, tokenizer, targets: Sequence[dict], context_items: Sequence[dict],
                      docs: Sequence[dict], holdout: Sequence[dict] = (),
                      config: InContextConfig = InContextConfig(), measure: MeasureConfig = MeasureConfig()) -> dict:
    """Recall of ``targets`` with 0..n shots of their own sources, for every model.

    ``context_items`` are the QA items shots are drawn from (all kinds of the targets' and
    the holdout items' sources); ``docs`` the documents passages are drawn from.
    """
    shot_counts = validate_in_context(config)
    if not targets:
        raise UserError("in-context attack: no target items")
    results: dict = {"shots": shot_counts, "curves": {}}
    fmt = measure_format(tokenizer, measure)
    prompt_sets = {n: build_context_prompts(targets, context_items, docs, n, config, fmt) for n in shot_counts}
    holdout_prompts = {n: build_context_prompts(holdout, context_items, docs, n, config, fmt)[0] for n in shot_counts} \
        if (config.mia and holdout) else {}
    for role, model in models.items():
        curve = []
        for n in shot_counts:
            prompts, mean_used = prompt_sets[n]
            point = {"shots": n, "mean_shots_used": mean_used,
                     **measure_recall(model, tokenizer, targets, prompts, measure).summary()}
            if holdout_prompts:
                point.update(membership_aucs(model, tokenizer, targets, holdout, prompts, holdout_prompts[n], measure)
                             or {})
            curve.append(point)
        results["curves"][role] = curve
    return results
