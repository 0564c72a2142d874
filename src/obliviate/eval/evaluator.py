"""The evaluator: one model, one world, one forget split -> one metrics JSON.

All teacher-forced quantities of every split come from ONE call of the scoring engine
(answers, paraphrases, perturbations, probability probes), all QA answers from one
batched greedy generation; the metrics are then pure functions of those numbers.

Result layout (DESIGN.md): ``{"summary": {...}, "per_item": {...}, "config": {...}}``.
Summary keys that cannot be computed for this world or run (no saga, no holdout, no
reference) are ``None``, never missing.

``per_item``:
  qa[role][qa_id]      kind, avg_nll, prob, truth_ratio, generated, rouge, correct
                       (+ exact_memorization / extraction_strength on forget,
                       normalised_prob on general); role in forget/retain/general/holdout/saga
  forget_truth_ratio   {qa_id: TR} in forget-item order: what a later run needs as reference
  mia[forget|holdout]  {qa_id or doc_id: {loss, zlib, mink, minkpp}} (higher = "member")
  documents[role]      {doc_id: {avg_nll, n_tokens}} for role in forget/retain/holdout (perplexity)
  verbmem              {doc_id: {rouge, generated}}
  familiarity          {completion: {prompt_id: {grade, completion}}, probability: {prompt_id: mass}}
  reference            None, or the reference's path, its forget TRs (same ids) and MIA AUCs

Choices where DESIGN.md is silent:
  * forget = QA of the forget split's sources; retain = the ``retain`` split (as in TOFU,
    the same retain set for every forget size); required, and must be non-empty.
  * Forgetting metrics (forget quality, forget TR / prob / ROUGE, memorization, KnowMem,
    MIA) use the forget items of ``forget_kinds`` (unique facts by default) and the
    holdout items of the same kinds: shared and inferred facts must survive, so they are
    graded by ``forget_shared_accuracy`` / ``forget_inferred_accuracy`` instead.
    ``forget_accuracy`` covers every forget item.
  * Model utility needs general items: ``None`` for a world without them.
  * MIA scores the QA answers (question as prompt) of forget vs holdout items; ZLib
    divides the answer's average NLL by the zlib length of the answer text. A world
    without such QA items (a text world, ``obliviate world --from-text``) scores whole
    documents of the forget vs holdout sources instead; ``config.mia_unit`` says which.
  * QA is optional per split: a split with documents but no QA items (a text world) gets
    ``None`` for every QA metric and is graded by its documents: VerbMem, MIA and
    ``<role>_perplexity`` = exp(total NLL / total tokens) over (at most
    ``document_max_docs``, evenly spaced) documents of the forget, retain and holdout splits.
  * PrivLeak compares the Min-K% AUC by default (MUSE), ``privleak_attack`` to change.
  * KnowMem (MUSE) = ROUGE-L recall of the greedy forget answer against the short key
    fact (``value``; the answer if absent); ``forget_rouge`` uses the whole answer.
  * VerbMem: the first ``verbmem_prefix_tokens`` tokens of each forget document are the
    prompt, the next ``verbmem_max_new_tokens`` the reference continuation.
  * Greedy answers stop at the first newline (the QA training format continues with the
    next question); ROUGE and accuracy look at that first line.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

import obliviate
from obliviate.data.format import qa_continuation, qa_prompt
from obliviate.errors import UserError
from obliviate.eval.fingerprint import cache_key, model_dir_fingerprint, model_state_fingerprint
from obliviate.eval.generation import GreedyConfig, generate_greedy
from obliviate.eval.metrics import familiarity as fam
from obliviate.eval.metrics import memorization, mia, qa, truth_ratio, utility
from obliviate.eval.scoring import PADDING_SIDES, ScoringConfig, TokenScores, score_continuations
from obliviate.models.loading import check_vocab
from obliviate.world.loader import World

# roles: which split an item is evaluated as; forget and retain are required
ROLES = ("forget", "retain", "general", "holdout", "saga")
REQUIRED_ROLES = ("forget", "retain")
KINDS = ("unique", "shared", "inferred")

SUMMARY_KEYS = (
    "forget_quality", "model_utility",
    "forget_truth_ratio", "forget_prob", "forget_rouge",
    "retain_truth_ratio", "retain_prob", "retain_rouge",
    "general_truth_ratio", "general_prob", "general_rouge",
    "holdout_prob", "saga_prob", "saga_rouge",
    "mia_auc_loss", "mia_auc_zlib", "mia_auc_mink", "mia_auc_minkpp", "privleak",
    "exact_memorization", "extraction_strength", "verbmem_rouge", "knowmem_rouge",
    "familiarity_completion", "familiarity_probability",
    "forget_perplexity", "retain_perplexity", "holdout_perplexity",
    "forget_accuracy", "forget_unique_accuracy", "forget_shared_accuracy", "forget_inferred_accuracy",
    "retain_accuracy", "retain_unique_accuracy", "retain_shared_accuracy", "retain_inferred_accuracy",
    "general_accuracy", "saga_accuracy",
)


@dataclass
class EvalConfig:
    batch_size: int = 32
    padding_side: str = "left"
    max_new_tokens: int = 32  # greedy QA answers (cut at the first newline)
    rouge_use_stemmer: bool = True
    mink_k: float = 0.4
    privleak_attack: str = "mink"  # which MIA AUC PrivLeak compares (MUSE uses Min-K%)
    verbmem_prefix_tokens: int = 32
    verbmem_max_new_tokens: int = 64
    verbmem_max_docs: int = 100  # first N forget documents (0: all)
    document_max_docs: int = 100  # per split, evenly spaced, for perplexity and document MIA (0: all)
    familiarity_max_new_tokens: int = 32
    chat_template: bool = False  # wrap questions in the tokenizer's chat template
    # Fact kinds that must be forgotten: forget quality, forget TR/prob/ROUGE, memorization,
    # KnowMem and MIA use the forget (and holdout) items of these kinds; shared and
    # inferred facts must survive and are graded by the per-kind accuracies instead.
    # Empty: all kinds. A split with none of these kinds falls back to all its items.
    forget_kinds: tuple[str, ...] = ("unique",)

    # settings that change speed, not numbers: left out of the cache key
    RUNTIME_FIELDS = ("batch_size",)

    def validate(self) -> None:
        if self.batch_size < 1:
            raise UserError(f"batch size must be at least 1, got {self.batch_size}")
        if self.padding_side not in PADDING_SIDES:
            raise UserError(f"padding side must be one of {PADDING_SIDES}, got {self.padding_side!r}")
        if not 0.0 < self.mink_k <= 1.0:
            raise UserError(f"mink_k must be in (0, 1], got {self.mink_k}")
        if self.privleak_attack not in mia.ATTACKS:
            raise UserError(f"privleak_attack must be one of {mia.ATTACKS}, got {self.privleak_attack!r}")
        if self.document_max_docs < 0:
            raise UserError(f"document_max_docs must be >= 0, got {self.document_max_docs}")
        for name in ("max_new_tokens", "verbmem_prefix_tokens", "verbmem_max_new_tokens", "familiarity_max_new_tokens"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")

    def metric_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in self.RUNTIME_FIELDS}


@dataclass
class Reference:
    """What a later run needs from the retain model's evaluation."""

    forget: str
    world_fingerprint: str
    forget_truth_ratio: dict[str, float]
    mia_auc: dict[str, float | None]
    path: str | None = None

    @classmethod
    def from_result(cls, result: Any, world: World, forget: str, path: str | os.PathLike | None = None) -> "Reference":
        where = f"reference {path}" if path else "reference"
        if not isinstance(result, dict) or not all(isinstance(result.get(k), dict)
                                                   for k in ("summary", "per_item", "config")):
            raise UserError(f"{where} is not an evaluation JSON (needs summary, per_item and config)")
        config = result["config"]
        if config.get("world_fingerprint") != world.fingerprint:
            raise UserError(f"{where} was computed on another world (fingerprint {config.get('world_fingerprint')}, "
                            f"this world is {world.fingerprint})")
        if config.get("forget") != forget:
            raise UserError(f"{where} is for forget split {config.get('forget')!r}, not {forget!r}")
        trs = result["per_item"].get("forget_truth_ratio")
        # empty only where the split has no QA item to score (a text world): no forget quality then
        if not isinstance(trs, dict) or (not trs and config.get("forget_target_count") != 0):
            raise UserError(f"{where} holds no per-item forget truth ratios")
        summary = result["summary"]
        return cls(
            forget=forget,
            world_fingerprint=world.fingerprint,
            forget_truth_ratio={str(k): (math.nan if v is None else float(v)) for k, v in trs.items()},
            mia_auc={name: summary.get(f"mia_auc_{name}") for name in mia.ATTACKS},
            path=None if path is None else str(path),
        )


def load_reference(path: str | os.PathLike, world: World, forget: str) -> Reference:
    """Read a reference (retain model) evaluation JSON; UserError if it does not fit."""
    from obliviate.io import read_json

    return Reference.from_result(read_json(path, "reference JSON"), world, forget, path)


# ----------------------------------------------------------------------------------------
# selection


def select_items(world: World, forget: str) -> dict[str, list[dict]]:
    """QA items per role; required roles must be non-empty, optional ones may be empty."""
    if forget not in world.splits:
        raise UserError(f"unknown forget split {forget!r}; this world has: {', '.join(sorted(world.splits))}")
    names = {"forget": forget, "retain": "retain", "general": "general", "holdout": "holdout", "saga": "saga"}
    selected: dict[str, list[dict]] = {}
    for role, split in names.items():
        if split not in world.splits:
            if role in REQUIRED_ROLES:
                raise UserError(f"world {world.root} has no {split!r} split")
            selected[role] = []
            continue
        items = world.qa_for(split)
        # a split without QA items is still graded by its documents (text worlds)
        if role in REQUIRED_ROLES and not items and not world.docs_for(world.split_sources(split)):
            raise UserError(f"split {split!r} of world {world.root} has no QA items and no documents")
        selected[role] = items
    forget_ids = {q["id"] for q in selected["forget"]}
    overlap = forget_ids & {q["id"] for q in selected["retain"]}
    if overlap:
        raise UserError(f"QA items {sorted(map(str, overlap))[:3]} are in both {forget!r} and 'retain'")
    for role, items in selected.items():
        ids = [str(q["id"]) for q in items]
        if len(set(ids)) != len(ids):
            duplicate = next(i for i in ids if ids.count(i) > 1)
            raise UserError(f"duplicate QA id {duplicate!r} in split {names[role]!r}")
        for q in items:
            if not str(q["answer"]).strip():
                raise UserError(f"QA item {q['id']!r} has an empty answer")
    return selected


def forget_targets(role_items: list[dict], kinds: tuple[str, ...]) -> list[dict]:
    """The items whose knowledge must go: those of ``kinds`` (all items if none are)."""
    selected = [q for q in role_items if q["kind"] in kinds] if kinds else []
    return selected or list(role_items)


def render_question(tokenizer, question: str, chat_template: bool) -> str:
    if not chat_template:
        return qa_prompt(question)
    if not getattr(tokenizer, "chat_template", None):
        raise UserError("chat_template=True but the tokenizer has no chat template")
    return tokenizer.apply_chat_template([{"role": "user", "content": question.strip()}],
                                         tokenize=False, add_generation_prompt=True)


# ----------------------------------------------------------------------------------------
# the two passes


class _Requests:
    """Collects (prompt, continuation) pairs; hands back index handles."""

    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []

    def add(self, prompt: str, continuation: str) -> int:
        self.pairs.append((prompt, continuation))
        return len(self.pairs) - 1


def _mean(values) -> float | None:
    values = list(values)
    return float(np.mean(values)) if values else None


def _verbmem_docs(world: World, tokenizer, forget: str, config: EvalConfig) -> list[tuple[str, str, str]]:
    """(doc_id, prefix text, true continuation text) for forget documents long enough."""
    docs = world.docs_for(world.split_sources(forget))
    if config.verbmem_max_docs:
        docs = docs[: config.verbmem_max_docs]
    out: list[tuple[str, str, str]] = []
    for doc in docs:
        ids = tokenizer(doc["text"], add_special_tokens=False)["input_ids"]
        if len(ids) <= config.verbmem_prefix_tokens:
            continue
        prefix = tokenizer.decode(ids[: config.verbmem_prefix_tokens])
        rest = ids[config.verbmem_prefix_tokens: config.verbmem_prefix_tokens + config.verbmem_max_new_tokens]
        out.append((str(doc["doc_id"]), prefix, tokenizer.decode(rest)))
    return out


def _evaluation_docs(world: World, split: str, limit: int) -> list[dict]:
    """Documents of ``split`` with text, at most ``limit`` (0: all) spread evenly over the split."""
    if split not in world.splits:
        return []
    docs = [d for d in world.docs_for(world.split_sources(split)) if str(d["text"]).strip()]
    if limit and len(docs) > limit:
        docs = [docs[i * len(docs) // limit] for i in range(limit)]
    return docs


def _perplexity(scores: list[TokenScores]) -> float | None:
    tokens = sum(s.n_tokens for s in scores)
    return float(math.exp(sum(s.nll_sum for s in scores) / tokens)) if tokens else None


def evaluate(
    model,
    tokenizer,
    world: World,
    forget: str = "forget10",
    reference: Reference | dict | None = None,
    config: EvalConfig = EvalConfig(),
    model_path: str | os.PathLike | None = None,
    model_fingerprint: str | None = None,
) -> dict:
    """Evaluate ``model`` on ``world`` for ``forget``; returns the metrics JSON as a dict.

    ``reference`` (the retain model's evaluation: a :class:`Reference`, or the dict a
    previous ``evaluate`` returned) enables ``forget_quality`` and ``privleak``.
    ``model_path`` (the directory the model was loaded from or saved to) is recorded, and
    its files fingerprint the model for the cache key; without it (or with
    ``model_fingerprint``) the in-memory weights are hashed instead.
    """
    config.validate()
    check_vocab(model, tokenizer)
    if isinstance(reference, dict):
        reference = Reference.from_result(reference, world, forget)
    elif reference is not None and (reference.world_fingerprint != world.fingerprint or reference.forget != forget):
        raise UserError(f"reference {reference.path or '(in memory)'} is for another world or forget split")
    items = select_items(world, forget)
    add_special = not config.chat_template

    # ---- pass 1: teacher-forced scores of everything, one engine call -------------------
    requests = _Requests()
    handles: dict[str, dict[str, dict[str, Any]]] = {role: {} for role in ROLES}
    for role in ROLES:
        for q in items[role]:
            prompt = render_question(tokenizer, q["question"], config.chat_template)
            handles[role][str(q["id"])] = {
                "answer": requests.add(prompt, qa_continuation(q["answer"])),
                "para": requests.add(prompt, qa_continuation(q["paraphrased_answer"])),
                "pert": [requests.add(prompt, qa_continuation(p)) for p in q["perturbed_answers"]],
            }
    probability_prompts = [p for p in world.prompts if p.get("type") == "probability" and p.get("target_terms")]
    probe_handles = [[requests.add(p["prompt"], fam.term_continuation(p["prompt"], t)) for t in p["target_terms"]]
                     for p in probability_prompts]
    # whole documents (empty prompt): perplexity, and MIA where no QA items can be scored
    doc_splits = {"forget": forget, "retain": "retain", "holdout": "holdout"}
    documents = {role: _evaluation_docs(world, split, config.document_max_docs) for role, split in doc_splits.items()}
    doc_handles = {role: [requests.add("", str(d["text"])) for d in docs] for role, docs in documents.items()}
    scoring = ScoringConfig(batch_size=config.batch_size, padding_side=config.padding_side, minkpp=True,
                            add_special_tokens=add_special)
    scores: list[TokenScores] = score_continuations(model, tokenizer, requests.pairs, scoring)

    # ---- pass 2: greedy generations ------------------------------------------------------
    gen_roles = ("forget", "retain", "general", "saga")
    gen_items = [(role, q) for role in gen_roles for q in items[role]]
    answers = generate_greedy(
        model, tokenizer, [render_question(tokenizer, q["question"], config.chat_template) for _, q in gen_items],
        GreedyConfig(max_new_tokens=config.max_new_tokens, batch_size=config.batch_size, stop_strings=("\n",),
                     add_special_tokens=add_special))
    generated = {(role, str(q["id"])): text for (role, q), text in zip(gen_items, answers)}

    completion_prompts = [p for p in world.prompts if p.get("type") == "completion"]
    judge = fam.FamiliarityJudge.from_world_dir(world.root, world.anchors) if completion_prompts else None
    completions = generate_greedy(
        model, tokenizer, [p["prompt"] for p in completion_prompts],
        GreedyConfig(max_new_tokens=config.familiarity_max_new_tokens, batch_size=config.batch_size),
    ) if judge is not None else []

    verbmem_docs = _verbmem_docs(world, tokenizer, forget, config)
    continuations = generate_greedy(
        model, tokenizer, [prefix for _, prefix, _ in verbmem_docs],
        GreedyConfig(max_new_tokens=config.verbmem_max_new_tokens, batch_size=config.batch_size),
    )

    # ---- metrics -------------------------------------------------------------------------
    summary: dict[str, Any] = {key: None for key in SUMMARY_KEYS}
    per_item: dict[str, Any] = {"qa": {}}
    targets = {role: forget_targets(items[role], config.forget_kinds) for role in ("forget", "holdout")}
    tr_by_role: dict[str, np.ndarray] = {}
    for role in ROLES:
        role_items = items[role]
        if not role_items:
            continue
        ids = [str(q["id"]) for q in role_items]
        h = [handles[role][i] for i in ids]
        answer_scores = [scores[x["answer"]] for x in h]
        avg_nll = np.array([s.avg_nll for s in answer_scores])
        tr = truth_ratio.truth_ratio([scores[x["para"]].avg_nll for x in h],
                                     [[scores[j].avg_nll for j in x["pert"]] for x in h])
        tr_by_role[role] = tr
        rows: dict[str, dict] = {}
        for index, (q, item_id) in enumerate(zip(role_items, ids)):
            row: dict[str, Any] = {"kind": q["kind"], "avg_nll": float(avg_nll[index]),
                                   "prob": float(np.exp(-avg_nll[index])), "truth_ratio": float(tr[index])}
            if (role, item_id) in generated:
                text = generated[(role, item_id)]
                row["generated"] = text
                row["rouge"] = qa.rouge_l_recall(qa.first_line(text), q["answer"], config.rouge_use_stemmer)
                row["correct"] = qa.contains_answer(text, qa.answer_value(q))
            rows[item_id] = row
        per_item["qa"][role] = rows

        # forgetting is measured on the facts that must go; other roles use every item
        summed = [rows[str(q["id"])] for q in targets[role]] if role in targets else list(rows.values())
        summary[f"{role}_prob"] = _mean(r["prob"] for r in summed)
        if role in gen_roles:
            summary[f"{role}_rouge"] = _mean(r["rouge"] for r in summed)
            summary[f"{role}_accuracy"] = _mean(float(r["correct"]) for r in rows.values())
        if role in ("forget", "retain"):
            for kind in KINDS:
                flags = [float(r["correct"]) for r in rows.values() if r["kind"] == kind]
                summary[f"{role}_{kind}_accuracy"] = _mean(flags)
        if role == "general":
            normalised = utility.normalised_prob(avg_nll, [[scores[j].avg_nll for j in x["pert"]] for x in h])
            summary["general_prob"] = float(np.mean(normalised))
            for item_id, value in zip(ids, normalised):
                rows[item_id]["normalised_prob"] = float(value)

    forget_ids = [str(q["id"]) for q in targets["forget"]]
    forget_trs = np.array([per_item["qa"]["forget"][i]["truth_ratio"] for i in forget_ids])
    if forget_ids:
        summary["forget_truth_ratio"] = truth_ratio.forget_truth_ratio(forget_trs)
    if "retain" in tr_by_role:
        summary["retain_truth_ratio"] = truth_ratio.retain_truth_ratio(tr_by_role["retain"])
    if "general" in tr_by_role:
        summary["general_truth_ratio"] = truth_ratio.retain_truth_ratio(tr_by_role["general"])
    per_item["forget_truth_ratio"] = {i: float(t) for i, t in zip(forget_ids, forget_trs)}

    # model utility: 6 numbers; needs general items
    parts = [summary[k] for k in ("retain_prob", "retain_rouge", "retain_truth_ratio",
                                  "general_prob", "general_rouge", "general_truth_ratio")]
    if all(p is not None for p in parts):
        summary["model_utility"] = utility.harmonic_mean(parts)

    # memorization of forget answers (teacher-forced argmax)
    em, es = [], []
    for item_id in forget_ids:
        flags = scores[handles["forget"][item_id]["answer"]].argmax_match
        em.append(memorization.exact_memorization(flags))
        es.append(memorization.extraction_strength(flags))
        per_item["qa"]["forget"][item_id].update(exact_memorization=em[-1], extraction_strength=es[-1])
    summary["exact_memorization"] = _mean(em)
    summary["extraction_strength"] = _mean(es)

    # KnowMem (MUSE): ROUGE-L recall of the greedy answer against the short key fact
    summary["knowmem_rouge"] = _mean(
        qa.rouge_l_recall(qa.first_line(generated[("forget", str(q["id"]))]), qa.answer_value(q),
                          config.rouge_use_stemmer) for q in targets["forget"])

    # membership inference: forget answers (members) vs holdout answers (non-members);
    # without QA items on both sides, forget documents vs holdout documents
    mia_rows: dict[str, dict[str, dict[str, float]]] = {"forget": {}, "holdout": {}}
    mia_unit = None
    if targets["forget"] and targets["holdout"]:
        mia_unit = "qa"
        for role in ("forget", "holdout"):
            for q in targets[role]:
                s = scores[handles[role][str(q["id"])]["answer"]]
                mia_rows[role][str(q["id"])] = mia.attack_scores(s.avg_nll, qa_continuation(q["answer"]), s.logprobs,
                                                                s.minkpp, config.mink_k)
    elif documents["forget"] and documents["holdout"]:
        mia_unit = "documents"
        for role in ("forget", "holdout"):
            for doc, handle in zip(documents[role], doc_handles[role]):
                s = scores[handle]
                mia_rows[role][str(doc["doc_id"])] = mia.attack_scores(s.avg_nll, str(doc["text"]), s.logprobs,
                                                                      s.minkpp, config.mink_k)
    per_item["mia"] = mia_rows
    aucs: dict[str, float | None] = {name: None for name in mia.ATTACKS}
    if mia_rows["forget"] and mia_rows["holdout"]:
        aucs = mia.attack_aucs(list(mia_rows["forget"].values()), list(mia_rows["holdout"].values()))
    for name, value in aucs.items():
        summary[f"mia_auc_{name}"] = value

    # perplexity of whole documents per split
    per_item["documents"] = {}
    for role, docs in documents.items():
        doc_scores = [scores[h] for h in doc_handles[role]]
        per_item["documents"][role] = {str(d["doc_id"]): {"avg_nll": s.avg_nll, "n_tokens": s.n_tokens}
                                       for d, s in zip(docs, doc_scores)}
        summary[f"{role}_perplexity"] = _perplexity(doc_scores)

    # verbatim memorization of forget documents
    verbmem_rows = {}
    for (doc_id, _, truth), text in zip(verbmem_docs, continuations):
        verbmem_rows[doc_id] = {"rouge": qa.rouge_l_recall(text, truth, config.rouge_use_stemmer), "generated": text}
    per_item["verbmem"] = verbmem_rows
    summary["verbmem_rouge"] = _mean(r["rouge"] for r in verbmem_rows.values())

    # familiarity with the saga
    familiarity: dict[str, Any] = {"completion": {}, "probability": {}}
    if judge is not None and completion_prompts:
        grades = []
        for index, (p, text) in enumerate(zip(completion_prompts, completions)):
            grade = judge.grade(p["prompt"], text, p.get("reference", ""))
            grades.append(grade)
            familiarity["completion"][str(p.get("id", index))] = {"grade": grade, "completion": text}
        summary["familiarity_completion"] = fam.familiarity_score(grades)
    if probability_prompts:
        masses = []
        for index, (p, hs) in enumerate(zip(probability_prompts, probe_handles)):
            mass = fam.target_mass([scores[j].nll_sum for j in hs])
            masses.append(mass)
            familiarity["probability"][str(p.get("id", index))] = mass
        summary["familiarity_probability"] = float(np.mean(masses))
    per_item["familiarity"] = familiarity

    # against the retain model: forget quality on the SAME items, PrivLeak
    per_item["reference"] = None
    if reference is not None:
        missing = [i for i in forget_ids if i not in reference.forget_truth_ratio]
        if missing:
            raise UserError(f"reference {reference.path or ''} lacks truth ratios for {len(missing)} forget item(s), "
                            f"e.g. {missing[0]!r}: it was computed on other QA items")
        ref_trs = [reference.forget_truth_ratio[i] for i in forget_ids]
        if forget_ids:
            summary["forget_quality"] = truth_ratio.forget_quality(forget_trs, ref_trs)
        ref_auc = reference.mia_auc.get(config.privleak_attack)
        own_auc = summary[f"mia_auc_{config.privleak_attack}"]
        if ref_auc is not None and own_auc is not None and ref_auc > 0:
            summary["privleak"] = mia.privleak(own_auc, ref_auc)
        per_item["reference"] = {"path": reference.path, "forget_truth_ratio": dict(zip(forget_ids, ref_trs)),
                                 "mia_auc": reference.mia_auc}

    # ---- config / identity ---------------------------------------------------------------
    if model_fingerprint is None:
        model_fingerprint = (model_dir_fingerprint(model_path) if model_path is not None and Path(model_path).is_dir()
                             else model_state_fingerprint(model))
    metric_config = config.metric_dict()
    result = {
        "summary": summary,
        "per_item": per_item,
        "config": {
            "model_path": None if model_path is None else str(model_path),
            "model_fingerprint": model_fingerprint,
            "world": str(world.root),
            "world_fingerprint": world.fingerprint,
            "forget": forget,
            "metrics": metric_config,
            "batch_size": config.batch_size,
            "reference": None if reference is None else reference.path,
            "privleak_attack": config.privleak_attack,
            "counts": {role: len(items[role]) for role in ROLES},
            "forget_target_count": len(targets["forget"]),
            "mia_unit": mia_unit,
            "document_counts": {role: len(docs) for role, docs in documents.items()},
            "holdout_target_count": len(targets["holdout"]),
            "obliviate_version": obliviate.__version__,
            "cache_key": eval_cache_key(model_fingerprint, world.fingerprint, forget, config),
        },
    }
    return json_safe(result)


def eval_cache_key(model_fingerprint: str, world_fingerprint: str, forget: str, config: EvalConfig) -> str:
    # the package version is part of the key: changed metric code must not reuse old numbers
    return cache_key(model_fingerprint, world_fingerprint, forget,
                     {**config.metric_dict(), "obliviate_version": obliviate.__version__})


def json_safe(value: Any) -> Any:
    """Plain JSON types; NaN / inf become None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
