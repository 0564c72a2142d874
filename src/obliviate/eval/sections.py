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
from obliviate.eval.items import GENERATED_ROLES, KINDS, ROLES, EvalItems, mia_unit
from obliviate.eval.metrics import familiarity as fam
from obliviate.eval.metrics import memorization, mia, qa, truth_ratio, utility
from obliviate.eval.passes import Generations, QAScores, Scores
from obliviate.eval.result import empty_summary
from obliviate.eval.scoring import TokenScores

# model utility: open-unlearning's TOFU utility (configs/eval/tofu_metrics/model_utility.yaml) is
# the harmonic mean of retain (answer probability, ROUGE-L recall, truth ratio `true_better`)
# and, per general group (TOFU: real authors, world facts), the probability normalised over
# the options, ROUGE-L recall and the truth ratio with the ORIGINAL answer as the true one.
RETAIN_UTILITY_KEYS = ("retain_prob", "retain_rouge", "retain_truth_ratio")
# items without a ``utility_group`` (the embedded world's general split: world facts) form one group
DEFAULT_GENERAL_GROUP = "world_facts"


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return float(np.mean(values)) if values else None


@dataclass
class Metrics:
    """Summary and per-item rows of every section, and what the retain comparison needs."""

    summary: dict[str, Any]
    per_item: dict[str, Any]
    forget_ids: list[str]  # every forget item, in item order (open-unlearning's forget set)
    forget_truth_ratios: np.ndarray  # their truth ratios, same order
    forget_target_ids: list[str]  # the forget items of ``forget_kinds`` (our *_unique variants)
    mia_unit: str | None  # "qa", "documents", or None (no membership inference)


def metric_sections(items: EvalItems, scores: Scores, texts: Generations, config: EvalConfig,
                    gradient_norms: dict[str, dict[str, float]] | None = None) -> Metrics:
    """Every metric section; summary keys a section cannot compute stay ``None``.
    ``gradient_norms`` (role -> unit id -> norm, from :mod:`obliviate.eval.gradnorm`) adds
    the GradNorm attack to the MIA rows."""
    stemmer = config.rouge_use_stemmer
    summary = empty_summary()
    per_item: dict[str, Any] = {}

    # QA per role, then what is computed from the roles' truth ratios and summaries
    role_qa = {role: qa_rows(items.qa[role], scores.qa[role], texts.answers.get(role), stemmer,
                             general=role == "general")
               for role in ROLES if items.qa[role]}
    per_item["qa"] = {role: r.rows for role, r in role_qa.items()}
    for role, r in role_qa.items():
        summary.update(qa_summary(role, r.rows))
    forget_ids = [str(q["id"]) for q in items.qa["forget"]]
    target_ids = [str(q["id"]) for q in items.targets["forget"]]
    # NaN where an item has no perturbed answers (MUSE's KnowMem QA): no truth ratio, no forget quality
    forget_rows = per_item["qa"].get("forget", {})   # none in a world without QA
    forget_trs = _truth_ratios(forget_rows, forget_ids)
    target_trs = _truth_ratios(forget_rows, target_ids)
    summary.update(truth_ratio_summary(forget_trs, target_trs, role_qa))
    per_item["forget_truth_ratio"] = {i: float(t) for i, t in zip(forget_ids, forget_trs)}
    per_item["model_utility"] = utility_parts(summary, items.qa["general"], per_item["qa"].get("general", {}))
    summary["model_utility"] = model_utility(per_item["model_utility"])

    # memorization of the forget answers (teacher-forced argmax), KnowMem on the greedy answers
    memorized = memorization_rows(forget_ids, scores.qa["forget"])
    for item_id, row in memorized.items():
        per_item["qa"]["forget"][item_id].update(row)
    summary.update(memorization_summary(memorized))
    summary["knowmem_f"] = knowmem_rouge(items.qa["forget"], texts.answers["forget"], stemmer)
    summary["knowmem_r"] = knowmem_rouge(items.qa["retain"], texts.answers["retain"], stemmer)

    per_item["mia"], mia_unit = mia_rows(items, scores, config.mink_k, gradient_norms)
    summary.update(mia_summary(per_item["mia"]))

    per_item["documents"] = document_rows(items.documents, scores.documents)
    summary.update(perplexity_summary(scores.documents))

    per_item["verbmem"] = verbmem_rows(items.verbmem, texts.continuations, stemmer)
    summary["verbmem_f"] = _mean(r["rouge"] for r in per_item["verbmem"].values())

    per_item["familiarity"], familiarity = familiarity_section(items, scores.probes, texts.completions)
    summary.update(familiarity)
    return Metrics(summary=summary, per_item=per_item, forget_ids=forget_ids, forget_truth_ratios=forget_trs,
                   forget_target_ids=target_ids, mia_unit=mia_unit)


# ---- QA ------------------------------------------------------------------------------------


def _truth_ratios(rows: dict[str, dict[str, Any]], ids: list[str]) -> np.ndarray:
    """The items' truth ratios as floats, NaN for an item without one."""
    return np.array([np.nan if rows[i]["truth_ratio"] is None else rows[i]["truth_ratio"] for i in ids],
                    dtype=np.float64)


@dataclass
class RoleQA:
    rows: dict[str, dict[str, Any]]  # qa_id -> per-item row (per_item["qa"][role])
    truth_ratios: np.ndarray  # per item, in item order


def qa_rows(role_items: list[dict], role_scores: dict[str, QAScores], answers: dict[str, str] | None,
            use_stemmer: bool, general: bool = False) -> RoleQA:
    """Per item: kind, avg_nll, prob, truth_ratio; with ``answers``: generated, rouge, correct.

    The truth ratio compares the perturbed answers with the paraphrased answer (TOFU's
    forget and retain sets) or, for ``general`` items, with the original answer (TOFU's
    real-authors and world-facts sets); ``general`` items also get ``normalised_prob``."""
    ids = [str(q["id"]) for q in role_items]
    item_scores = [role_scores[i] for i in ids]
    avg_nll = np.array([s.answer.avg_nll for s in item_scores])
    perturbed = [[p.avg_nll for p in s.perturbed] for s in item_scores]
    true_nll = avg_nll if general else np.array([s.paraphrased.avg_nll for s in item_scores])
    # items without perturbed answers (TOFU's holdout) have no truth ratio
    with_perturbed = np.array([bool(row) for row in perturbed], dtype=bool)
    tr = np.full(len(ids), np.nan)
    if with_perturbed.any():
        tr[with_perturbed] = truth_ratio.truth_ratio(true_nll[with_perturbed],
                                                     [row for row in perturbed if row])
    rows: dict[str, dict[str, Any]] = {}
    for index, (q, item_id) in enumerate(zip(role_items, ids)):
        row: dict[str, Any] = {"kind": q["kind"], "avg_nll": float(avg_nll[index]),
                               "prob": float(np.exp(-avg_nll[index])),
                               "truth_ratio": float(tr[index]) if with_perturbed[index] else None}
        if answers is not None and item_id in answers:
            text = answers[item_id]
            row["generated"] = text
            row["rouge"] = qa.rouge_l_recall(qa.first_line(text), q["answer"], use_stemmer)
            row["correct"] = qa.contains_answer(text, qa.answer_value(q))
        rows[item_id] = row
    if general:
        for item_id, value in zip(ids, utility.normalised_prob(avg_nll, perturbed)):
            rows[item_id]["normalised_prob"] = float(value)
    return RoleQA(rows=rows, truth_ratios=tr)


def qa_summary(role: str, rows: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Over every item of the role: ``<role>_prob`` / ``_rouge`` (the forget ones under
    open-unlearning's names ``forget_Q_A_Prob`` / ``forget_Q_A_ROUGE``), ``<role>_accuracy``,
    per-kind accuracies of forget and retain; general prob is the normalised one."""
    prob_key, rouge_key = ("forget_Q_A_Prob", "forget_Q_A_ROUGE") if role == "forget" else (f"{role}_prob", f"{role}_rouge")
    out = {prob_key: _mean(r["prob"] for r in rows.values())}
    if role in GENERATED_ROLES:
        out[rouge_key] = _mean(r["rouge"] for r in rows.values())
        out[f"{role}_accuracy"] = _mean(float(r["correct"]) for r in rows.values())
    if role in ("forget", "retain"):
        for kind in KINDS:
            out[f"{role}_{kind}_accuracy"] = _mean([float(r["correct"]) for r in rows.values() if r["kind"] == kind])
    if role == "general":
        out["general_prob"] = float(np.mean([r["normalised_prob"] for r in rows.values()]))
    return out


def truth_ratio_summary(forget_trs: np.ndarray, target_trs: np.ndarray, role_qa: dict[str, RoleQA]
                        ) -> dict[str, float]:
    """Forget TR (``closer_to_1_better``) over all forget items and over the forget targets
    (``_unique``); retain and general TRs (``true_better``) over all their items."""
    out = {}
    # items without perturbed answers have no truth ratio (NaN): left out; none at all: no summary
    forget_trs, target_trs = forget_trs[np.isfinite(forget_trs)], target_trs[np.isfinite(target_trs)]
    if forget_trs.size:
        out["forget_truth_ratio"] = truth_ratio.forget_truth_ratio(forget_trs)
    if target_trs.size:
        out["forget_truth_ratio_unique"] = truth_ratio.forget_truth_ratio(target_trs)
    for role in ("retain", "general"):
        trs = role_qa[role].truth_ratios if role in role_qa else np.array([])
        trs = trs[np.isfinite(trs)]
        if trs.size:
            out[f"{role}_truth_ratio"] = truth_ratio.retain_truth_ratio(trs)
    return out


def utility_parts(summary: dict[str, Any], general_items: list[dict], general_rows: dict[str, dict[str, Any]]
                  ) -> dict[str, float | None]:
    """The numbers model utility is the harmonic mean of: retain's three, then three per
    general group (``<group>_prob`` normalised, ``_rouge``, ``_truth_ratio``). Nine with
    TOFU's real authors and world facts; six on the embedded world (one general group)."""
    parts: dict[str, float | None] = {key: summary[key] for key in RETAIN_UTILITY_KEYS}
    groups: dict[str, list[dict[str, Any]]] = {}
    for q in general_items:
        groups.setdefault(str(q.get("utility_group") or DEFAULT_GENERAL_GROUP), []).append(general_rows[str(q["id"])])
    for group, rows in groups.items():
        parts[f"{group}_prob"] = _mean(r["normalised_prob"] for r in rows)
        parts[f"{group}_rouge"] = _mean(r["rouge"] for r in rows if "rouge" in r)
        parts[f"{group}_truth_ratio"] = truth_ratio.retain_truth_ratio([r["truth_ratio"] for r in rows])
    return parts


def model_utility(parts: dict[str, float | None]) -> float | None:
    """Harmonic mean of the utility parts; None without general items or with a part missing."""
    values = list(parts.values())
    if len(values) <= len(RETAIN_UTILITY_KEYS) or any(v is None for v in values):
        return None
    return utility.harmonic_mean(values)


# ---- memorization --------------------------------------------------------------------------


def memorization_rows(forget_ids: list[str], forget_scores: dict[str, QAScores]) -> dict[str, dict[str, float]]:
    """Exact memorization and extraction strength of each forget answer (its tokens without
    the appended EOS, as open-unlearning's tokenwise_vocab_logprobs drops it)."""
    rows = {}
    for item_id in forget_ids:
        flags = forget_scores[item_id].answer.content_argmax_match
        rows[item_id] = {"exact_memorization": memorization.exact_memorization(flags),
                         "extraction_strength": memorization.extraction_strength(flags)}
    return rows


def memorization_summary(rows: dict[str, dict[str, float]]) -> dict[str, float | None]:
    return {key: _mean(r[key] for r in rows.values()) for key in ("exact_memorization", "extraction_strength")}


def knowmem_rouge(role_items: list[dict], answers: dict[str, str], use_stemmer: bool) -> float | None:
    """KnowMem (MUSE): ROUGE-L F1 of the greedy answer against the short key fact (MUSE's
    ``mean_rougeL`` and open-unlearning's ``rougeL_f1`` are the F-measure, not the recall)."""
    return _mean(qa.rouge_l_f1(qa.first_line(answers[str(q["id"])]), qa.answer_value(q), use_stemmer)
                 for q in role_items)


# ---- membership inference ------------------------------------------------------------------


def mia_rows(items: EvalItems, scores: Scores, mink_k: float,
             gradient_norms: dict[str, dict[str, float]] | None = None
             ) -> tuple[dict[str, dict[str, dict[str, float]]], str | None]:
    """Attack scores of members (forget) and non-members (holdout), and the unit scored
    (:func:`~obliviate.eval.items.mia_unit`): every forget and holdout QA answer, as
    open-unlearning's TOFU MIA does, else whole documents. GradNorm where ``gradient_norms``
    has the unit; the reference-based score is added by the retain comparison."""
    rows: dict[str, dict[str, dict[str, float]]] = {"forget": {}, "holdout": {}}
    unit = mia_unit(items)
    for role in ("forget", "holdout"):
        if unit == "qa":
            scored = [(str(q["id"]), qa_continuation(q["answer"]), scores.qa[role][str(q["id"])].answer)
                      for q in items.qa[role]]
        elif unit == "documents":
            scored = [(str(d["doc_id"]), str(d["text"]), s) for d, s in zip(items.documents[role], scores.documents[role])]
        else:
            scored = []
        for unit_id, text, s in scored:
            row = mia.attack_scores(s.avg_nll, text, s.content_logprobs, s.content_minkpp, mink_k)
            norm = (gradient_norms or {}).get(role, {}).get(unit_id)
            if norm is not None:
                row["gradnorm"] = mia.gradnorm_score(norm)
            rows[role][unit_id] = row
    return rows, unit


def mia_summary(rows: dict[str, dict[str, dict[str, float]]]) -> dict[str, float | None]:
    """``mia_<attack>`` (open-unlearning's names: the AUC of forget vs holdout); None
    without both sides or for an attack that did not score every item."""
    aucs: dict[str, float | None] = {name: None for name in mia.ATTACKS}
    if rows["forget"] and rows["holdout"]:
        aucs = mia.attack_aucs(list(rows["forget"].values()), list(rows["holdout"].values()))
    return {f"mia_{name}": value for name, value in aucs.items()}


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
    """ROUGE-L F1 (MUSE's VerbMem; ``rouge``) and recall of each greedy continuation of a
    verbatim prompt against the true continuation."""
    return {doc_id: {"rouge": qa.rouge_l_f1(text, truth, use_stemmer),
                     "rouge_recall": qa.rouge_l_recall(text, truth, use_stemmer), "generated": text}
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
