"""The metrics of one evaluation, family by family, from the two passes' scores and texts.

Each family (a "section") turns :class:`~obliviate.eval.passes.Scores` and
:class:`~obliviate.eval.passes.Generations` into its per-item rows and its summary
numbers with the pure functions of :mod:`obliviate.eval.metrics`:

* QA per role: probability, truth ratio, ROUGE, exact-answer accuracy (per fact kind);
  truth-ratio summaries and model utility from them;
* memorization of forget answers (exact memorization, extraction strength) and KnowMem;
* membership inference (forget vs holdout, QA answers or whole documents);
* documents (perplexity) and verbatim memorization;
* familiarity with the saga.

:func:`metric_sections` runs them all; the retain-model comparison (forget quality,
PrivLeak) is in :mod:`obliviate.eval.retain_reference`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from obliviate.data.format import qa_continuation
from obliviate.eval.config import EvalConfig
from obliviate.eval.items import GENERATED_ROLES, KINDS, ROLES, EvalItems
from obliviate.eval.metrics import familiarity as fam
from obliviate.eval.metrics import memorization, mia, qa, truth_ratio, utility
from obliviate.eval.passes import Generations, QAScores, Scores
from obliviate.eval.result import empty_summary
from obliviate.eval.scoring import TokenScores

# the six numbers model utility is the harmonic mean of
UTILITY_KEYS = ("retain_prob", "retain_rouge", "retain_truth_ratio", "general_prob", "general_rouge", "general_truth_ratio")


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return float(np.mean(values)) if values else None


@dataclass
class Metrics:
    """Summary and per-item rows of every section, and what the retain comparison needs."""

    summary: dict[str, Any]
    per_item: dict[str, Any]
    forget_target_ids: list[str]  # forget items graded for forgetting, in item order
    forget_truth_ratios: np.ndarray  # their truth ratios, same order
    mia_unit: str | None  # "qa", "documents", or None (no membership inference)


def metric_sections(items: EvalItems, scores: Scores, texts: Generations, config: EvalConfig) -> Metrics:
    """Every metric section; summary keys a section cannot compute stay ``None``."""
    stemmer = config.rouge_use_stemmer
    summary = empty_summary()
    per_item: dict[str, Any] = {}

    # QA per role, then what is computed from the roles' truth ratios and summaries
    role_qa = {role: qa_rows(items.qa[role], scores.qa[role], texts.answers.get(role), stemmer,
                             normalise=role == "general")
               for role in ROLES if items.qa[role]}
    per_item["qa"] = {role: r.rows for role, r in role_qa.items()}
    for role, r in role_qa.items():
        summary.update(qa_summary(role, r.rows, items.targets.get(role)))
    target_ids = [str(q["id"]) for q in items.targets["forget"]]
    forget_trs = np.array([per_item["qa"]["forget"][i]["truth_ratio"] for i in target_ids])
    summary.update(truth_ratio_summary(forget_trs, role_qa))
    per_item["forget_truth_ratio"] = {i: float(t) for i, t in zip(target_ids, forget_trs)}
    summary["model_utility"] = model_utility(summary)

    # memorization of the forget answers (teacher-forced argmax), KnowMem on the greedy answers
    memorized = memorization_rows(target_ids, scores.qa["forget"])
    for item_id, row in memorized.items():
        per_item["qa"]["forget"][item_id].update(row)
    summary.update(memorization_summary(memorized))
    summary["knowmem_rouge"] = knowmem_rouge(items.targets["forget"], texts.answers["forget"], stemmer)

    per_item["mia"], mia_unit = mia_rows(items, scores, config.mink_k)
    summary.update(mia_summary(per_item["mia"]))

    per_item["documents"] = document_rows(items.documents, scores.documents)
    summary.update(perplexity_summary(scores.documents))

    per_item["verbmem"] = verbmem_rows(items.verbmem, texts.continuations, stemmer)
    summary["verbmem_rouge"] = _mean(r["rouge"] for r in per_item["verbmem"].values())

    per_item["familiarity"], familiarity = familiarity_section(items, scores.probes, texts.completions)
    summary.update(familiarity)
    return Metrics(summary=summary, per_item=per_item, forget_target_ids=target_ids,
                   forget_truth_ratios=forget_trs, mia_unit=mia_unit)


# ---- QA ------------------------------------------------------------------------------------


@dataclass
class RoleQA:
    rows: dict[str, dict[str, Any]]  # qa_id -> per-item row (per_item["qa"][role])
    truth_ratios: np.ndarray  # per item, in item order


def qa_rows(role_items: list[dict], role_scores: dict[str, QAScores], answers: dict[str, str] | None,
            use_stemmer: bool, normalise: bool = False) -> RoleQA:
    """Per item: kind, avg_nll, prob, truth_ratio; with ``answers``: generated, rouge, correct;
    with ``normalise`` (general items): normalised_prob."""
    ids = [str(q["id"]) for q in role_items]
    item_scores = [role_scores[i] for i in ids]
    avg_nll = np.array([s.answer.avg_nll for s in item_scores])
    perturbed = [[p.avg_nll for p in s.perturbed] for s in item_scores]
    tr = truth_ratio.truth_ratio([s.paraphrased.avg_nll for s in item_scores], perturbed)
    rows: dict[str, dict[str, Any]] = {}
    for index, (q, item_id) in enumerate(zip(role_items, ids)):
        row: dict[str, Any] = {"kind": q["kind"], "avg_nll": float(avg_nll[index]),
                               "prob": float(np.exp(-avg_nll[index])), "truth_ratio": float(tr[index])}
        if answers is not None and item_id in answers:
            text = answers[item_id]
            row["generated"] = text
            row["rouge"] = qa.rouge_l_recall(qa.first_line(text), q["answer"], use_stemmer)
            row["correct"] = qa.contains_answer(text, qa.answer_value(q))
        rows[item_id] = row
    if normalise:
        for item_id, value in zip(ids, utility.normalised_prob(avg_nll, perturbed)):
            rows[item_id]["normalised_prob"] = float(value)
    return RoleQA(rows=rows, truth_ratios=tr)


def qa_summary(role: str, rows: dict[str, dict[str, Any]], targets: list[dict] | None) -> dict[str, float | None]:
    """``<role>_prob`` / ``_rouge`` over ``targets`` (all rows if None), ``<role>_accuracy`` over
    all rows, per-kind accuracies of forget and retain; general prob is the normalised one."""
    summed = [rows[str(q["id"])] for q in targets] if targets is not None else list(rows.values())
    out = {f"{role}_prob": _mean(r["prob"] for r in summed)}
    if role in GENERATED_ROLES:
        out[f"{role}_rouge"] = _mean(r["rouge"] for r in summed)
        out[f"{role}_accuracy"] = _mean(float(r["correct"]) for r in rows.values())
    if role in ("forget", "retain"):
        for kind in KINDS:
            out[f"{role}_{kind}_accuracy"] = _mean([float(r["correct"]) for r in rows.values() if r["kind"] == kind])
    if role == "general":
        out["general_prob"] = float(np.mean([r["normalised_prob"] for r in rows.values()]))
    return out


def truth_ratio_summary(forget_trs: np.ndarray, role_qa: dict[str, RoleQA]) -> dict[str, float]:
    """Forget TR over the forget targets; retain and general TRs over all their items."""
    out = {}
    if forget_trs.size:
        out["forget_truth_ratio"] = truth_ratio.forget_truth_ratio(forget_trs)
    for role in ("retain", "general"):
        if role in role_qa:
            out[f"{role}_truth_ratio"] = truth_ratio.retain_truth_ratio(role_qa[role].truth_ratios)
    return out


def model_utility(summary: dict[str, Any]) -> float | None:
    """Harmonic mean of the six retain / general numbers; None without general items."""
    parts = [summary[k] for k in UTILITY_KEYS]
    return utility.harmonic_mean(parts) if all(p is not None for p in parts) else None


# ---- memorization --------------------------------------------------------------------------


def memorization_rows(target_ids: list[str], forget_scores: dict[str, QAScores]) -> dict[str, dict[str, float]]:
    """Exact memorization and extraction strength of each forget target's answer."""
    rows = {}
    for item_id in target_ids:
        flags = forget_scores[item_id].answer.argmax_match
        rows[item_id] = {"exact_memorization": memorization.exact_memorization(flags),
                         "extraction_strength": memorization.extraction_strength(flags)}
    return rows


def memorization_summary(rows: dict[str, dict[str, float]]) -> dict[str, float | None]:
    return {key: _mean(r[key] for r in rows.values()) for key in ("exact_memorization", "extraction_strength")}


def knowmem_rouge(targets: list[dict], answers: dict[str, str], use_stemmer: bool) -> float | None:
    """KnowMem (MUSE): ROUGE-L recall of the greedy answer against the short key fact."""
    return _mean(qa.rouge_l_recall(qa.first_line(answers[str(q["id"])]), qa.answer_value(q), use_stemmer)
                 for q in targets)


# ---- membership inference ------------------------------------------------------------------


def mia_rows(items: EvalItems, scores: Scores, mink_k: float) -> tuple[dict[str, dict[str, dict[str, float]]], str | None]:
    """Attack scores of members (forget) and non-members (holdout), and the unit scored:
    the QA answers of the targets where both sides have some, else whole documents."""
    rows: dict[str, dict[str, dict[str, float]]] = {"forget": {}, "holdout": {}}
    if items.targets["forget"] and items.targets["holdout"]:
        for role in ("forget", "holdout"):
            for q in items.targets[role]:
                s = scores.qa[role][str(q["id"])].answer
                rows[role][str(q["id"])] = mia.attack_scores(s.avg_nll, qa_continuation(q["answer"]), s.logprobs,
                                                            s.minkpp, mink_k)
        return rows, "qa"
    if items.documents["forget"] and items.documents["holdout"]:
        for role in ("forget", "holdout"):
            for doc, s in zip(items.documents[role], scores.documents[role]):
                rows[role][str(doc["doc_id"])] = mia.attack_scores(s.avg_nll, str(doc["text"]), s.logprobs,
                                                                  s.minkpp, mink_k)
        return rows, "documents"
    return rows, None


def mia_summary(rows: dict[str, dict[str, dict[str, float]]]) -> dict[str, float | None]:
    """``mia_auc_<attack>`` of forget vs holdout; None without both."""
    aucs: dict[str, float | None] = {name: None for name in mia.ATTACKS}
    if rows["forget"] and rows["holdout"]:
        aucs = mia.attack_aucs(list(rows["forget"].values()), list(rows["holdout"].values()))
    return {f"mia_auc_{name}": value for name, value in aucs.items()}


# ---- documents, verbatim memorization ------------------------------------------------------


def document_rows(documents: dict[str, list[dict]], doc_scores: dict[str, list[TokenScores]]
                  ) -> dict[str, dict[str, dict[str, float]]]:
    return {role: {str(d["doc_id"]): {"avg_nll": s.avg_nll, "n_tokens": s.n_tokens}
                   for d, s in zip(docs, doc_scores[role])}
            for role, docs in documents.items()}


def perplexity(scores: list[TokenScores]) -> float | None:
    """exp(total NLL / total tokens); None without tokens."""
    tokens = sum(s.n_tokens for s in scores)
    return float(math.exp(sum(s.nll_sum for s in scores) / tokens)) if tokens else None


def perplexity_summary(doc_scores: dict[str, list[TokenScores]]) -> dict[str, float | None]:
    return {f"{role}_perplexity": perplexity(s) for role, s in doc_scores.items()}


def verbmem_rows(docs: list[tuple[str, str, str]], continuations: list[str], use_stemmer: bool
                 ) -> dict[str, dict[str, Any]]:
    """ROUGE-L recall of each greedy continuation of a forget document's prefix against the true one."""
    return {doc_id: {"rouge": qa.rouge_l_recall(text, truth, use_stemmer), "generated": text}
            for (doc_id, _, truth), text in zip(docs, continuations)}


# ---- familiarity ---------------------------------------------------------------------------


def familiarity_section(items: EvalItems, probe_scores: list[list[TokenScores]], completions: list[str]
                        ) -> tuple[dict[str, dict], dict[str, float]]:
    """Graded completions and target-term mass per prompt, and their summary scores."""
    rows: dict[str, dict] = {"completion": {}, "probability": {}}
    summary: dict[str, float] = {}
    if items.judge is not None and items.completion_prompts:
        grades = []
        for index, (p, text) in enumerate(zip(items.completion_prompts, completions)):
            grade = items.judge.grade(p["prompt"], text, p.get("reference", ""))
            grades.append(grade)
            rows["completion"][str(p.get("id", index))] = {"grade": grade, "completion": text}
        summary["familiarity_completion"] = fam.familiarity_score(grades)
    if items.probability_prompts:
        masses = []
        for index, (p, term_scores) in enumerate(zip(items.probability_prompts, probe_scores)):
            mass = fam.target_mass([s.nll_sum for s in term_scores])
            masses.append(mass)
            rows["probability"][str(p.get("id", index))] = mass
        summary["familiarity_probability"] = float(np.mean(masses))
    return rows, summary
