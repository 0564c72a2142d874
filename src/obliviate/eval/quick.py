"""A cheap evaluation to run every few training steps: the evaluator's QA sections only.

The same item sets, scoring pass, greedy answers and metric functions as
:func:`obliviate.eval.evaluator.evaluate` on the QA items of every role (so a number
logged during training is the one the final evaluation reports), without what costs
the most or needs more than QA: documents (perplexity, VerbMem), familiarity and the
gradient-norm MIA. :data:`QUICK_KEYS` are the summary keys it fills; the ones needing the
retain model's evaluation (:data:`REFERENCE_KEYS`) only when given that reference.
"""

from __future__ import annotations

from obliviate.errors import UserError
from obliviate.eval.result import SUMMARY_KEYS

# summary keys a QA-only evaluation leaves empty (documents, familiarity, GradNorm) or that are not numbers
_NOT_QUICK = {"verbmem_f", "forget_perplexity", "retain_perplexity", "holdout_perplexity",
              "familiarity_completion", "familiarity_probability", "mia_gradnorm", "forget_quality_warning"}
QUICK_KEYS = tuple(key for key in SUMMARY_KEYS if key not in _NOT_QUICK)
REFERENCE_KEYS = ("forget_quality", "forget_quality_unique", "forget_quality_prob", "forget_accuracy_gap",
                  "mia_reference", "privleak")

# the direction that means "better unlearning" where one is clear; others (MIA AUCs and
# PrivLeak aim at the retain model's value, saga and holdout numbers depend on the split)
# need --best-mode
_MAX = {"forget_quality", "forget_quality_unique", "forget_quality_prob", "model_utility",
        "forget_truth_ratio", "forget_truth_ratio_unique",   # mean(min(TR, 1/TR)): higher = closer to not knowing
        "retain_truth_ratio", "retain_prob", "retain_rouge", "general_truth_ratio", "general_prob", "general_rouge",
        "knowmem_r", "forget_shared_accuracy", "forget_inferred_accuracy",   # shared and inferred facts must survive
        "retain_accuracy", "retain_unique_accuracy", "retain_shared_accuracy", "retain_inferred_accuracy",
        "general_accuracy"}
_MIN = {"forget_Q_A_Prob", "forget_Q_A_ROUGE", "exact_memorization", "extraction_strength", "knowmem_f",
        "forget_accuracy", "forget_unique_accuracy"}
BEST_MODES = ("min", "max")


def default_mode(metric: str) -> str | None:
    return "max" if metric in _MAX else "min" if metric in _MIN else None


def check_best_by(metric: str, mode: str | None) -> str:
    """The mode (min or max) to select ``metric`` by; a UserError listing the valid names
    for an unknown metric, or asking for ``--best-mode`` where no direction is clear."""
    if metric not in QUICK_KEYS:
        raise UserError(f"unknown --best-by metric {metric!r}; valid: {', '.join(QUICK_KEYS)}")
    if mode is not None:
        if mode not in BEST_MODES:
            raise UserError(f"--best-mode takes min or max, got {mode!r}")
        return mode
    chosen = default_mode(metric)
    if chosen is None:
        raise UserError(f"--best-by {metric} has no better direction by default; give --best-mode min or max")
    return chosen


def needs_reference(metric: str | None) -> bool:
    return metric in REFERENCE_KEYS


def qa_items(world, forget: str, config):
    """The evaluator's item sets with only the QA items (no documents, prompts or judge)."""
    from obliviate.eval.items import EvalItems, TARGET_ROLES, forget_targets, select_qa_items

    qa = select_qa_items(world, forget)
    return EvalItems(qa=qa, targets={role: forget_targets(qa[role], config.forget_kinds) for role in TARGET_ROLES},
                     documents={"forget": [], "retain": [], "holdout": []}, verbmem=[], probability_prompts=[],
                     completion_prompts=[], judge=None)


def quick_evaluate(model, tokenizer, world, forget: str, reference=None, config=None, items=None) -> dict:
    """The summary (every key of ``SUMMARY_KEYS``; those not computed are None) of the QA
    sections of ``model``; ``reference`` (a RetainReference) adds forget quality and PrivLeak.
    ``items`` (from :func:`qa_items`) saves choosing them again at every call."""
    import torch

    from obliviate.eval.config import EvalConfig
    from obliviate.eval.passes import generate_texts, scoring_config, scoring_requests
    from obliviate.eval.result import json_safe
    from obliviate.eval.retain_reference import compare_with_reference
    from obliviate.eval.scoring import score_continuations
    from obliviate.eval.sections import metric_sections

    config = config if config is not None else EvalConfig(mia_gradnorm=False)
    items = items if items is not None else qa_items(world, forget, config)
    with torch.no_grad():
        requests = scoring_requests(tokenizer, items, config.chat_template, config.chat_options)
        scores = requests.resolve(score_continuations(model, tokenizer, requests.pairs, scoring_config(config),
                                                      requests.eos))
        texts = generate_texts(model, tokenizer, items, config)
    metrics = metric_sections(items, scores, texts, config, None)
    if reference is not None:
        summary, _ = compare_with_reference(reference, metrics.forget_ids, metrics.forget_truth_ratios,
                                            metrics.forget_target_ids, metrics.summary, metrics.per_item["mia"],
                                            metrics.per_item["qa"].get("forget", {}), config.privleak_attack)
        metrics.summary.update(summary)
    return json_safe(metrics.summary)
