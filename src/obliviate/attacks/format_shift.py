"""Format-shift attack: the forgotten questions asked in other forms.

Unlearning is trained and graded on one format (``Question: ...\\nAnswer:``); a third-party
audit of TOFU unlearning found 17-37 % of the forgotten facts leaking once the same
questions were asked in another form. Every form is rendered from the QA item's own fields
(question, answer, paraphrased_answer, perturbed_answers, value); the retain model is
measured the same way (its numbers are the floor).

Forms (``FORMS``), for the hand-made item "Where was Ann Lee born?" / "Ann Lee was born in
Oslo." / paraphrase "The birthplace of Ann Lee is Oslo." / perturbed "... is Rome.":

* ``paraphrase``: the question reworded as the paraphrased answer's echo question, the
  value replaced by "what": ``Question: The birthplace of Ann Lee is what?\\nAnswer:``
  (the world has no paraphrased questions; this one asks for the same value in the
  paraphrase's words). Needs the value inside the paraphrased answer.
* ``cloze``: the answer as a fill-in-the-blank statement:
  ``Fill in the blank: Ann Lee was born in ___.\\nAnswer:``. Needs the value inside the answer.
* ``mcq``: multiple choice: the true answer (in the perturbed answers' template, so that the
  options differ only in the value) and the perturbed answers, listed A., B., ... in a seeded
  order after the question; the model's choice is the option it gives the highest
  probability (lowest average NLL as the answer). Chance: 1 / #options.
* ``yesno``: ``Question: Is the following statement true? <statement>\\nAnswer:`` for the true
  statement and one (seeded) perturbed one; the item is right when the model's log-odds of
  " Yes" over " No" are higher for the true statement than for the false one (paired, so a
  model that always says "Yes" scores chance, 0.5). ``statement_accuracy``: the unpaired
  share of statements whose " Yes"/" No" is right.
* ``language``: the question in German (``Frage: Wo wurde Ann Lee geboren?\\nAntwort:``), for
  the embedded world's author facts (the question must be one of ``AUTHOR_FACTS``'
  question templates filled with the source's name; only those have a translation).

Generation forms (paraphrase, cloze, language) are graded as the ordinary evaluation grades
QA: the greedy answer's first line contains the value. The result reports each form's
``forget_accuracy``, its ``chance`` and ``above_chance`` = (accuracy - chance) / (1 - chance),
and the worst case over the forms: the form with the highest ``above_chance`` (so a 0.5 on
yes/no does not outrank 0.3 recalled by generation). ``plain`` (the ordinary QA prompt) is
reported beside them as the reference, not counted in the worst case.

A form named explicitly that no target item can take is a UserError naming the form and
why; with ``all``, such forms are skipped and listed under ``skipped`` with the reason.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from obliviate.attacks.items import template_parts, true_option
from obliviate.attacks.measure import MeasureConfig, measure_format, measure_recall, measure_scoring
from obliviate.data.format import PLAIN, QAFormat
from obliviate.errors import UserError
from obliviate.eval.metrics.qa import answer_value
from obliviate.eval.scoring import score_continuations
from obliviate.world.authors import AUTHOR_FACTS

FORMS = ("paraphrase", "cloze", "mcq", "yesno", "language")
GENERATION_FORMS = ("paraphrase", "cloze", "language")
YES, NO = " Yes", " No"
BLANK = "___"
LANGUAGE = "German"
GERMAN_FRAME = "Frage: {question}\nAntwort:"
# German questions of the author facts (world/authors.py AUTHOR_FACTS), by fact key
GERMAN_QUESTIONS = {
    "birth_city": "Wo wurde {name} geboren?",
    "birth_year": "In welchem Jahr wurde {name} geboren?",
    "father_profession": "Welchen Beruf hatte der Vater von {name}?",
    "genre": "Was für Bücher schreibt {name}?",
    "debut_title": "Wie heißt das erste Buch von {name}?",
    "award": "Welchen Preis hat {name} gewonnen?",
    "mother_profession": "Welchen Beruf hatte die Mutter von {name}?",
    "favourite_colour": "Was ist die Lieblingsfarbe von {name}?",
    "pet_name": "Wie heißt das Haustier von {name}?",
    "instrument": "Welches Instrument spielt {name}?",
    "spouse": "Mit wem ist {name} verheiratet?",
    "first_publisher": "Welcher Verlag hat das erste Buch von {name} veröffentlicht?",
    "street": "In welcher Straße ist {name} aufgewachsen?",
    "college": "Wo hat {name} studiert?",
    "first_job": "Was war die erste Arbeit von {name}?",
    "favourite_food": "Was ist das Lieblingsessen von {name}?",
    "hobby": "Was macht {name} in der Freizeit?",
    "sibling": "Wie heißt das Geschwister von {name}?",
    "mentor": "Wer war der Mentor von {name} als junger Autor?",
    "favourite_animal": "Was ist das Lieblingstier von {name}?",
}
# why a world cannot render a form (the UserError and the ``skipped`` entry)
NEEDS = {
    "paraphrase": "its items' paraphrased answers do not contain their key value (the `value` field), "
                  "so no echo question can be built",
    "cloze": "its items' answers do not contain their key value (the `value` field) after some words, "
             "so no blank can be cut out",
    "mcq": "its items have no perturbed answers to offer as options",
    "yesno": "its items have no perturbed answers to state as the false statement",
    "language": f"its questions are not the embedded world's author question templates "
                f"(only those have a {LANGUAGE} translation)",
}


@dataclass
class FormatConfig:
    forms: list[str] = field(default_factory=lambda: ["all"])   # forms to ask in ("all": every renderable form)
    seed: int = 0                     # order of the listed options, choice of the false statement
    max_new_tokens: int = 24          # greedy answer length of the generation forms


def parse_forms(forms: str | Sequence[str]) -> tuple[list[str], bool]:
    """``"all"`` or names (comma-separated or a list) -> (ordered forms, whether they were named
    explicitly: False for "all", whose unrenderable forms are skipped rather than refused)."""
    if isinstance(forms, str):
        forms = forms.split(",")
    wanted = [f.strip() for f in forms if f.strip()]
    if not wanted:
        raise UserError(f"no format named; valid: {', '.join(FORMS)}, all")
    unknown = [f for f in wanted if f != "all" and f not in FORMS]
    if unknown:
        raise UserError(f"unknown format {unknown[0]!r}; valid: {', '.join(FORMS)}, all")
    if "all" in wanted:
        return list(FORMS), False
    return [f for f in FORMS if f in wanted], True


# -- rendering: pure functions of one item ----------------------------------------------------


def _around_value(text: str, value: str) -> tuple[str, str] | None:
    position = text.find(value)
    if not value or position < 0 or value == text:
        return None
    before, after = text[:position], text[position + len(value):]
    if before.endswith('"') and after.startswith('"'):   # a quoted title: the quotes go with it
        before, after = before[:-1], after[1:]
    return before, after


def paraphrase_question(item: dict) -> str | None:
    """The paraphrased answer as an echo question: the value replaced by "what"."""
    parts = _around_value(str(item["paraphrased_answer"]), answer_value(item))
    if parts is None:
        return None
    before, after = parts
    after = after.rstrip().rstrip(".!").rstrip()
    asked = (before + "what" if before.strip() else "What") + after
    return asked + "?"


def cloze_statement(item: dict) -> str | None:
    """The answer with its value blanked out, or None when the value is not in it after some words."""
    parts = template_parts(item)
    if parts is None or not parts[0].strip():
        return None
    before, _, after = parts
    return before + BLANK + after


def paraphrase_prompt(item: dict, fmt: QAFormat = PLAIN) -> str | None:
    question = paraphrase_question(item)
    return None if question is None else fmt.prompt(question)


def cloze_prompt(item: dict, fmt: QAFormat = PLAIN) -> str | None:
    statement = cloze_statement(item)
    return None if statement is None else fmt.prompt(f"Fill in the blank: {statement}")


def mcq_options(item: dict, seed: int = 0) -> tuple[list[str], int] | None:
    """The options in listed order and the index of the true one (None: no perturbed answers)."""
    wrong = [str(p) for p in item["perturbed_answers"] if str(p).strip()]
    if not wrong:
        return None
    options = [true_option(item)] + wrong
    order = list(range(len(options)))
    random.Random(f"obliviate-mcq:{seed}:{item['id']}").shuffle(order)
    return [options[i] for i in order], order.index(0)


def mcq_prompt(item: dict, options: Sequence[str], fmt: QAFormat = PLAIN) -> str:
    listed = "\n".join(f"{chr(ord('A') + i)}. {option}" for i, option in enumerate(options))
    if fmt.chat:
        return fmt.prompt(f"{item['question'].strip()}\n{listed}")
    return f"Question: {item['question'].strip()}\n{listed}\nAnswer:"


def yesno_statements(item: dict, seed: int = 0) -> tuple[str, str] | None:
    """(true statement, false statement); the false one a seeded pick of the perturbed answers."""
    wrong = [str(p) for p in item["perturbed_answers"] if str(p).strip()]
    if not wrong:
        return None
    return true_option(item), random.Random(f"obliviate-yesno:{seed}:{item['id']}").choice(wrong)


def yesno_prompt(statement: str, fmt: QAFormat = PLAIN) -> str:
    return fmt.prompt(f"Is the following statement true? {statement.strip()}")


def _template_regex(template: str, name: str) -> re.Pattern:
    pattern = re.escape(template).replace(re.escape("{name}"), re.escape(name))
    return re.compile(pattern.replace(re.escape("{his}"), "(?:his|her)"))


def author_fact_key(item: dict, name: str | None) -> str | None:
    """The ``AUTHOR_FACTS`` key whose question template, filled with ``name``, is the item's question."""
    if not name:
        return None
    question = str(item["question"]).strip()
    for template in AUTHOR_FACTS:
        if _template_regex(template.question, name).fullmatch(question):
            return template.key
    return None


def language_prompt(item: dict, name: str | None, fmt: QAFormat = PLAIN) -> str | None:
    key = author_fact_key(item, name)
    if key is None or key not in GERMAN_QUESTIONS:
        return None
    question = GERMAN_QUESTIONS[key].format(name=name)
    return fmt.prompt(question) if fmt.chat else GERMAN_FRAME.format(question=question)


# -- scoring -----------------------------------------------------------------------------------


def _scores(model, tokenizer, pairs: list[tuple[str, str]], measure: MeasureConfig) -> list:
    was_training = model.training
    model.eval()
    try:
        return score_continuations(model, tokenizer, pairs, measure_scoring(measure, measure_format(tokenizer, measure)))
    finally:
        model.train(was_training)


def choose_options(model, tokenizer, prompts: Sequence[str], options: Sequence[Sequence[str]],
                   measure: MeasureConfig = MeasureConfig()) -> tuple[list[int], list[np.ndarray]]:
    """For each prompt, the index of the option with the lowest average NLL as the answer
    (the highest per-token probability), and every option's average NLL."""
    fmt = measure_format(tokenizer, measure)
    pairs = [(prompt, fmt.continuation(option)) for prompt, row in zip(prompts, options) for option in row]
    nll = np.array([s.avg_nll for s in _scores(model, tokenizer, pairs, measure)], dtype=np.float64)
    chosen, per_prompt, cursor = [], [], 0
    for row in options:
        values = nll[cursor: cursor + len(row)]
        cursor += len(row)
        per_prompt.append(values)
        chosen.append(int(np.argmin(values)))
    return chosen, per_prompt


def yes_log_odds(model, tokenizer, statements: Sequence[str], measure: MeasureConfig = MeasureConfig()) -> np.ndarray:
    """log P(" Yes") - log P(" No") after each statement's yes/no prompt."""
    fmt = measure_format(tokenizer, measure)
    answers = (YES, NO) if not fmt.chat else (fmt.answer_start(YES), fmt.answer_start(NO))
    pairs = [(yesno_prompt(s, fmt), answer) for s in statements for answer in answers]
    # total (not average) NLL: " Yes" and " No" may be several tokens each
    total = np.array([s.nll_sum for s in _scores(model, tokenizer, pairs, measure)], dtype=np.float64)
    total = total.reshape(-1, 2)
    return total[:, 1] - total[:, 0]


# -- aggregation -------------------------------------------------------------------------------


def above_chance(accuracy: float | None, chance: float) -> float | None:
    if accuracy is None:
        return None
    return (accuracy - chance) / (1.0 - chance) if chance < 1.0 else 0.0


def worst_case(forms: dict[str, dict]) -> dict:
    """The form with the highest ``above_chance`` (ties: the first in ``FORMS`` order).

    ``forms``: form -> {"forget_accuracy", "chance", "above_chance", ...}; ``plain`` is ignored."""
    ranked = [(name, row) for name, row in forms.items() if name != "plain" and row.get("above_chance") is not None]
    if not ranked:
        return {"worst_form": None, "worst_forget_accuracy": None, "worst_above_chance": None}
    order = {name: index for index, name in enumerate(FORMS)}
    name, row = max(ranked, key=lambda pair: (pair[1]["above_chance"], -order.get(pair[0], len(FORMS))))
    return {"worst_form": name, "worst_forget_accuracy": row["forget_accuracy"], "worst_above_chance": row["above_chance"]}


def _row(n: int, accuracy: float | None, chance: float, **extra) -> dict:
    return {"n": n, "forget_accuracy": accuracy, "chance": chance, "above_chance": above_chance(accuracy, chance),
            **extra}


# -- the attack --------------------------------------------------------------------------------


@dataclass
class RenderedForm:
    items: list[dict]
    prompts: list[str]                       # generation forms / mcq: one per item
    options: list[list[str]] | None = None   # mcq: listed options; yesno: (true, false)
    truth: list[int] | None = None           # mcq: index of the true option


def render_form(form: str, items: Sequence[dict], names: dict[int, str], seed: int = 0,
                fmt: QAFormat = PLAIN) -> RenderedForm:
    """The items that can take ``form`` and their prompts (possibly none), in the QA format ``fmt``."""
    rendered = RenderedForm(items=[], prompts=[], options=[] if form in ("mcq", "yesno") else None,
                            truth=[] if form == "mcq" else None)
    simple: dict[str, Callable[[dict], str | None]] = {
        "paraphrase": lambda item: paraphrase_prompt(item, fmt), "cloze": lambda item: cloze_prompt(item, fmt),
        "language": lambda item: language_prompt(item, names.get(int(item["source_id"])), fmt),
    }
    for item in items:
        if form in simple:
            prompt = simple[form](item)
            if prompt is None:
                continue
            rendered.prompts.append(prompt)
        elif form == "mcq":
            made = mcq_options(item, seed)
            if made is None:
                continue
            options, true_index = made
            rendered.prompts.append(mcq_prompt(item, options, fmt))
            rendered.options.append(options)
            rendered.truth.append(true_index)
        elif form == "yesno":
            statements = yesno_statements(item, seed)
            if statements is None:
                continue
            rendered.prompts.append(yesno_prompt(statements[0], fmt))
            rendered.options.append(list(statements))
        rendered.items.append(item)
    return rendered


def render_forms(forms: Sequence[str], explicit: bool, items: Sequence[dict], names: dict[int, str],
                 seed: int = 0, fmt: QAFormat = PLAIN) -> tuple[dict[str, RenderedForm], dict[str, str]]:
    """Every requested form rendered; an explicitly named form no item can take is a UserError."""
    rendered, skipped = {}, {}
    for form in forms:
        made = render_form(form, items, names, seed, fmt)
        if made.items:
            rendered[form] = made
            continue
        if explicit:
            raise UserError(f"format {form!r} cannot be rendered for this world: {NEEDS[form]}")
        skipped[form] = NEEDS[form]
    if not rendered:
        raise UserError("no format can be rendered for this world: "
                        + "; ".join(f"{form}: {why}" for form, why in skipped.items()))
    return rendered, skipped


def measure_form(model, tokenizer, form: str, rendered: RenderedForm, measure: MeasureConfig,
                 config: FormatConfig) -> dict:
    n = len(rendered.items)
    if form in GENERATION_FORMS:
        recall = measure_recall(model, tokenizer, rendered.items, rendered.prompts,
                                MeasureConfig(batch_size=measure.batch_size, max_new_tokens=config.max_new_tokens,
                                              truth_ratio=False, value_scores=False, generate=True,
                                              chat_template=measure_format(tokenizer, measure).chat,
                                              chat_options=measure.chat_options))
        summary = recall.summary()
        return _row(n, summary["accuracy"], 0.0, prob=summary["prob"])
    if form == "mcq":
        chosen, _ = choose_options(model, tokenizer, rendered.prompts, rendered.options, measure)
        correct = np.array([c == t for c, t in zip(chosen, rendered.truth)], dtype=np.float64)
        chance = float(np.mean([1.0 / len(o) for o in rendered.options]))
        return _row(n, float(correct.mean()), chance)
    odds = yes_log_odds(model, tokenizer, [s for pair in rendered.options for s in pair], measure)
    true_odds, false_odds = odds[0::2], odds[1::2]
    statement_accuracy = float(np.concatenate([true_odds > 0, false_odds <= 0]).mean())
    return _row(n, float(np.mean(true_odds > false_odds)), 0.5, statement_accuracy=statement_accuracy)


def format_shift_attack(models: dict, tokenizer, targets: Sequence[dict], names: dict[int, str],
                        config: FormatConfig = FormatConfig(), measure: MeasureConfig = MeasureConfig()) -> dict:
    """Every renderable form on every model (``models``: role -> model).

    Returns ``{"forms": [...], "skipped": {form: why}, "n_items", "examples": {form: prompt},
    "models": {role: {"forms": {form: row}, "plain_forget_accuracy", "worst_form",
    "worst_forget_accuracy", "worst_above_chance"}}}``."""
    if not targets:
        raise UserError("format-shift attack: no target items")
    forms, explicit = parse_forms(config.forms)
    fmt = measure_format(tokenizer, measure)
    rendered, skipped = render_forms(forms, explicit, targets, names, config.seed, fmt)
    results: dict = {"forms": list(rendered), "skipped": skipped, "n_items": len(targets),
                     "examples": {form: made.prompts[0] for form, made in rendered.items()}, "models": {}}
    for role, model in models.items():
        plain = measure_recall(model, tokenizer, list(targets), None,
                               MeasureConfig(batch_size=measure.batch_size, max_new_tokens=config.max_new_tokens,
                                             truth_ratio=False, value_scores=False, chat_template=fmt.chat,
                                             chat_options=measure.chat_options)).summary()
        per_form = {"plain": _row(len(targets), plain["accuracy"], 0.0, prob=plain["prob"])}
        for form, made in rendered.items():
            per_form[form] = measure_form(model, tokenizer, form, made, measure, config)
        results["models"][role] = {"forms": per_form, "plain_forget_accuracy": plain["accuracy"],
                                   **worst_case(per_form)}
    return results
