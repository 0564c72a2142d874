"""The evaluator's two model passes over :class:`~obliviate.eval.items.EvalItems`.

1. Teacher-forced scores of everything (QA answers, paraphrases, perturbations,
   probability probes, whole documents) as ONE list of (prompt, continuation) pairs for
   one call of the scoring engine: :class:`ScoringRequests` builds the list and maps the
   engine's scores back to what they score (:class:`Scores`).
2. Greedy generations (:func:`generate_texts`): QA answers, familiarity completions and
   verbatim continuations of forget documents.

The order of the pairs and prompts is part of the numbers (it decides the batches):
keep it when changing this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from obliviate.data.format import ChatOptions, QAFormat, qa_format
from obliviate.eval.config import EvalConfig
from obliviate.eval.generation import GreedyConfig, generate_greedy
from obliviate.eval.gradnorm import gradient_norms
from obliviate.eval.items import GENERATED_ROLES, ROLES, EvalItems, item_prompt, mia_unit
from obliviate.eval.metrics.familiarity import term_continuation
from obliviate.eval.scoring import ScoringConfig, TokenScores


@dataclass
class QAScores:
    """Scores of one QA item's answer, paraphrased answer and perturbed answers."""

    answer: TokenScores
    paraphrased: TokenScores
    perturbed: list[TokenScores]


@dataclass
class Scores:
    """The scoring pass's results, by what they score."""

    qa: dict[str, dict[str, QAScores]]  # role -> qa_id -> scores (every role of ROLES)
    probes: list[list[TokenScores]]  # per probability prompt, per target term
    documents: dict[str, list[TokenScores]]  # role -> per document of EvalItems.documents


@dataclass
class ScoringRequests:
    """Every (prompt, continuation) pair to score, and where each quantity's pair is."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    eos: list[bool] = field(default_factory=list)  # per pair: the engine appends EOS (QA answers)
    # role -> qa_id -> (answer, paraphrased answer, [perturbed answers]) indices into pairs
    qa: dict[str, dict[str, tuple[int, int, list[int]]]] = field(default_factory=dict)
    probes: list[list[int]] = field(default_factory=list)
    documents: dict[str, list[int]] = field(default_factory=dict)
    # a pair asked for twice is scored once (a paraphrase equal to the answer, as TOFU's holdout
    # and general items have; the same question in two roles)
    _index: dict[tuple[str, str, bool], int] = field(default_factory=dict, repr=False)

    def add(self, prompt: str, continuation: str, eos: bool = False) -> int:
        key = (prompt, continuation, eos)
        if key not in self._index:
            self._index[key] = len(self.pairs)
            self.pairs.append((prompt, continuation))
            self.eos.append(eos)
        return self._index[key]

    def resolve(self, scores: list[TokenScores]) -> Scores:
        """The engine's scores (one per pair, in pair order) by what they score."""
        return Scores(
            qa={role: {item_id: QAScores(scores[answer], scores[paraphrased], [scores[j] for j in perturbed])
                       for item_id, (answer, paraphrased, perturbed) in by_id.items()}
                for role, by_id in self.qa.items()},
            probes=[[scores[j] for j in handles] for handles in self.probes],
            documents={role: [scores[j] for j in handles] for role, handles in self.documents.items()},
        )


def text_prefix(tokenizer, fmt: QAFormat) -> str:
    """What non-QA text (documents, probes) is scored after. Chat-format scoring adds no
    special tokens (the template holds its own BOS), so plain text gets the BOS written out
    and is scored exactly as in the plain format."""
    return (tokenizer.bos_token or "") if fmt.chat else ""


def scoring_requests(tokenizer, items: EvalItems, chat_template: bool | None,
                     chat_options: ChatOptions = ChatOptions()) -> ScoringRequests:
    """QA answers (all roles; EOS appended, as open-unlearning scores them), probability
    probes, then whole documents (empty prompt)."""
    fmt = qa_format(tokenizer, chat_template, chat_options)
    prefix = text_prefix(tokenizer, fmt)
    requests = ScoringRequests()
    for role in ROLES:
        requests.qa[role] = {}
        for q in items.qa[role]:
            prompt = item_prompt(fmt, q)
            requests.qa[role][str(q["id"])] = (
                requests.add(prompt, fmt.continuation(q["answer"]), eos=True),
                requests.add(prompt, fmt.continuation(q["paraphrased_answer"]), eos=True),
                [requests.add(prompt, fmt.continuation(p), eos=True) for p in q["perturbed_answers"]],
            )
    requests.probes = [[requests.add(prefix + p["prompt"], term_continuation(p["prompt"], t))
                        for t in p["target_terms"]] for p in items.probability_prompts]
    requests.documents = {role: [requests.add(prefix, str(d["text"])) for d in docs]
                          for role, docs in items.documents.items()}
    return requests


def scoring_config(config: EvalConfig) -> ScoringConfig:
    """Engine settings of the scoring pass (Min-K%++ on; chat-template prompts hold their BOS)."""
    return ScoringConfig(batch_size=config.batch_size, padding_side=config.padding_side, minkpp=True,
                         add_special_tokens=not config.chat_template)


@dataclass
class Generations:
    """The generation pass's texts."""

    answers: dict[str, dict[str, str]]  # role -> qa_id -> greedy answer, for GENERATED_ROLES
    completions: list[str]  # per completion prompt (none without a judge)
    continuations: list[str]  # per verbatim-memorization document


def generate_texts(model, tokenizer, items: EvalItems, config: EvalConfig) -> Generations:
    """Greedy QA answers (stopped at the first newline), familiarity completions, verbatim continuations."""
    fmt = qa_format(tokenizer, config.chat_template, config.chat_options)
    qa_items = [(role, q) for role in GENERATED_ROLES for q in items.qa[role]]
    answers = generate_greedy(
        model, tokenizer, [item_prompt(fmt, q) for _, q in qa_items],
        GreedyConfig(max_new_tokens=config.max_new_tokens, batch_size=config.batch_size, stop_strings=("\n",),
                     add_special_tokens=not config.chat_template))
    by_role: dict[str, dict[str, str]] = {role: {} for role in GENERATED_ROLES}
    for (role, q), text in zip(qa_items, answers):
        by_role[role][str(q["id"])] = text

    completions = generate_greedy(
        model, tokenizer, [p["prompt"] for p in items.completion_prompts],
        GreedyConfig(max_new_tokens=config.familiarity_max_new_tokens, batch_size=config.batch_size),
    ) if items.judge is not None else []

    continuations = generate_greedy(
        model, tokenizer, [prefix for _, prefix, _ in items.verbmem],
        GreedyConfig(max_new_tokens=config.verbmem_max_new_tokens, batch_size=config.batch_size),
    )
    return Generations(answers=by_role, completions=completions, continuations=continuations)


def mia_gradient_norms(model, tokenizer, items: EvalItems, config: EvalConfig) -> dict[str, dict[str, float]] | None:
    """GradNorm of every membership-inference unit (role -> unit id -> norm), the same units
    and prompts the scoring pass scores; None when switched off or not computable."""
    unit = mia_unit(items)
    if not config.mia_gradnorm or unit is None:
        return None
    fmt = qa_format(tokenizer, config.chat_template, config.chat_options)
    units: dict[str, list[tuple[str, tuple[str, str]]]] = {}
    for role in ("forget", "holdout"):
        if unit == "qa":
            units[role] = [(str(q["id"]), (item_prompt(fmt, q), fmt.continuation(q["answer"])))
                           for q in items.qa[role]]
        else:
            units[role] = [(str(d["doc_id"]), (text_prefix(tokenizer, fmt), str(d["text"])))
                           for d in items.documents[role]]
    out: dict[str, dict[str, float]] = {}
    for role, entries in units.items():
        norms = gradient_norms(model, tokenizer, [pair for _, pair in entries], config.gradnorm_p,
                               add_special_tokens=not config.chat_template)
        if norms is None:
            return None
        out[role] = {unit_id: norm for (unit_id, _), norm in zip(entries, norms)}
    return out
