"""The evaluator: one model, one world, one forget split -> one metrics JSON.

All teacher-forced quantities of every split come from ONE call of the scoring engine
(answers, paraphrases, perturbations, probability probes, documents), all QA answers from
one batched greedy generation; the metrics are then pure functions of those numbers.

:func:`evaluate` only strings the steps together, each in its own module:

* :mod:`~obliviate.eval.config`: :class:`EvalConfig`, the settings;
* :mod:`~obliviate.eval.items`: the item sets (QA per role, forget targets, documents,
  prompts), chosen and checked before the model runs;
* :mod:`~obliviate.eval.passes`: the two model passes (scoring requests, generations);
* :mod:`~obliviate.eval.sections`: per-item rows and summary numbers, metric family by family;
* :mod:`~obliviate.eval.retain_reference`: the retain model's result (forget quality, PrivLeak);
* :mod:`~obliviate.eval.result`: the result JSON's summary keys, config block and cache key.

Result layout (docs/design.md): ``{"summary": {...}, "per_item": {...}, "config": {...}}``.
Summary keys that cannot be computed for this world or run (no saga, no holdout, no
reference) are ``None``, never missing.

``per_item``:
  qa[role][qa_id]      kind, avg_nll, prob, truth_ratio, generated, rouge, correct
                       (+ exact_memorization / extraction_strength on forget,
                       normalised_prob on general); role in forget/retain/general/holdout/saga
  forget_truth_ratio   {qa_id: TR} of every forget item: what a later run needs as reference
  model_utility        {part: value}: the numbers model utility is the harmonic mean of
  mia[forget|holdout]  {qa_id or doc_id: {loss, zlib, min_k, min_k_plus_plus, gradnorm,
                       reference}} (higher = "member")
  documents[role]      {doc_id: {avg_nll, n_tokens}} for role in forget/retain/holdout (perplexity)
  verbmem              {doc_id: {rouge, generated}}
  familiarity          {completion: {prompt_id: {grade, completion}}, probability: {prompt_id: mass}}
  reference            None, or the reference's path, its forget TRs (same ids) and MIA AUCs

open-unlearning's definitions (docs/design.md, "Metrics", has the table of sources):
  * QA answers are scored with an EOS appended: probability, truth ratio, LOSS, ZLib and
    the reference attack include its prediction; Min-K%, Min-K%++, GradNorm, exact
    memorization and extraction strength do not.
  * The forget set is every forget item (TOFU's forgetXX_perturbed): forget_quality (KS of
    truth ratios vs the retain model), forget_truth_ratio, forget_Q_A_Prob / _ROUGE,
    memorization, KnowMem and MIA (vs every holdout item).
  * model_utility: harmonic mean of retain (prob, ROUGE-L recall, truth ratio) and, per
    general group (``utility_group``; TOFU: real_authors, world_facts), the probability
    normalised over the options, ROUGE-L recall and the truth ratio with the original
    answer as the true one: 9 numbers on TOFU, 6 on the embedded world.
  * privleak = ((1 - AUC) - (1 - AUC_retain)) / (1 - AUC_retain) * 100 of Min-K% by
    default: about -100 for a model that forgot nothing, 0 for the retrained model.

Ours, under their own names: forget_quality_unique / forget_truth_ratio_unique (the
``forget_kinds`` items, unique facts by default: shared and inferred facts must survive
and are graded by ``forget_shared_accuracy`` / ``forget_inferred_accuracy``);
forget_quality_prob (KS of per-item answer probability vs the retain model),
forget_accuracy_gap and forget_quality_warning (the truth ratio can be fooled when the
perturbed answers do not share the paraphrase's wording); familiarity.

Choices where open-unlearning is silent:
  * forget = QA of the forget split's sources; retain = the ``retain`` split (as in TOFU,
    the same retain set for every forget size); required, and must be non-empty.
  * Model utility needs general items: ``None`` for a world without them.
  * MIA scores the QA answers (question as prompt) of forget vs holdout items; ZLib
    divides the answer's average NLL by the zlib length of the answer text. A world
    without such QA items (a text world, ``obliviate world --from-text``) scores whole
    documents of the forget vs holdout sources instead; ``config.mia_unit`` says which.
    The reference attack's reference is the retain model (as open-unlearning's
    ``reference_model_path``), read from its evaluation's per-item LOSS scores.
  * QA is optional per split: a split with documents but no QA items (a text world) gets
    ``None`` for every QA metric and is graded by its documents: VerbMem, MIA and
    ``<role>_perplexity`` = exp(total NLL / total tokens) over (at most
    ``document_max_docs``, evenly spaced) documents of the forget, retain and holdout splits.
  * KnowMem (MUSE) = ROUGE-L recall of the greedy answer against the short key fact
    (``value``; the answer if absent): knowmem_f on forget, knowmem_r on retain;
    ``forget_Q_A_ROUGE`` uses the whole answer.
  * VerbMem (verbmem_f): the first ``verbmem_prefix_tokens`` tokens of each forget
    document are the prompt, the next ``verbmem_max_new_tokens`` the reference continuation.
  * Greedy answers stop at the first newline (the QA training format continues with the
    next question); ROUGE and accuracy look at that first line.
"""

from __future__ import annotations

import dataclasses
import os

from obliviate.data.format import resolve_chat_template
from obliviate.eval.config import EvalConfig
from obliviate.eval.items import choose_items
from obliviate.eval.passes import generate_texts, mia_gradient_norms, scoring_config, scoring_requests
from obliviate.eval.result import SUMMARY_KEYS, eval_cache_key, json_safe, model_fingerprint_of, result_config
from obliviate.eval.retain_reference import RetainReference, as_retain_reference, compare_with_reference, load_reference
from obliviate.eval.scoring import score_continuations
from obliviate.eval.sections import metric_sections
from obliviate.models.loading import chat_options_for, chat_template_for, check_vocab
from obliviate.world.loader import World

# the evaluation API; the names defined elsewhere are re-exported for the callers of this module
__all__ = ["SUMMARY_KEYS", "EvalConfig", "RetainReference", "eval_cache_key", "evaluate",
           "load_reference"]


def evaluate(
    model,
    tokenizer,
    world: World,
    forget: str = "forget10",
    reference: RetainReference | dict | None = None,
    config: EvalConfig = EvalConfig(),
    model_path: str | os.PathLike | None = None,
    model_fingerprint: str | None = None,
) -> dict:
    """Evaluate ``model`` on ``world`` for ``forget``; returns the metrics JSON as a dict.

    ``reference`` (the retain model's evaluation: a :class:`RetainReference`, or the dict a
    previous ``evaluate`` returned) enables ``forget_quality`` and ``privleak``.
    ``model_path`` (the directory the model was loaded from or saved to) is recorded, and
    its files fingerprint the model for the cache key; without it (or with
    ``model_fingerprint``) the in-memory weights are hashed instead.
    """
    config.validate()
    check_vocab(model, tokenizer)
    if config.chat_template is None:  # automatic: as the model was trained, else its tokenizer's
        chat = (chat_template_for(model_path, None, tokenizer) if model_path is not None
                else resolve_chat_template(None, tokenizer))
        config = dataclasses.replace(config, chat_template=chat)
    if model_path is not None:   # a system prompt or date not given: the model's own
        config = dataclasses.replace(config, chat_options=chat_options_for(model_path, config.chat_options))
    reference = as_retain_reference(reference, world, forget)
    items = choose_items(world, tokenizer, forget, config)

    # the two model passes: every teacher-forced score in one engine call, then the greedy texts
    # (bench/bench_scoring.py captures the pairs by patching this module's score_continuations)
    requests = scoring_requests(tokenizer, items, config.chat_template, config.chat_options)
    scores = requests.resolve(score_continuations(model, tokenizer, requests.pairs, scoring_config(config),
                                                  requests.eos))
    texts = generate_texts(model, tokenizer, items, config)
    norms = mia_gradient_norms(model, tokenizer, items, config)

    metrics = metric_sections(items, scores, texts, config, norms)
    metrics.per_item["reference"] = None
    if reference is not None:
        summary, metrics.per_item["reference"] = compare_with_reference(
            reference, metrics.forget_ids, metrics.forget_truth_ratios, metrics.forget_target_ids,
            metrics.summary, metrics.per_item["mia"], metrics.per_item["qa"].get("forget", {}),
            config.privleak_attack)
        metrics.summary.update(summary)

    if model_fingerprint is None:
        model_fingerprint = model_fingerprint_of(model, model_path)
    return json_safe({
        "summary": metrics.summary,
        "per_item": metrics.per_item,
        "config": result_config(model_path=model_path, model_fingerprint=model_fingerprint, world=world,
                                forget=forget, config=config,
                                reference_path=None if reference is None else reference.path,
                                items=items, mia_unit=metrics.mia_unit),
    })
