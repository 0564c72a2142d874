"""The format-shift attack: forms rendered from a hand-made item, multiple choice and yes/no
scored on a model whose next-token distribution is set by hand, the worst case over forms,
bad input, and the attack on the micro run."""

from __future__ import annotations

import copy
import json
import math
import shutil

import numpy as np
import pytest
import torch

from obliviate.attacks.format_shift import (
    FormatConfig, choose_options, cloze_prompt, format_shift_attack, language_prompt, mcq_options, mcq_prompt,
    paraphrase_prompt, parse_forms, render_forms, worst_case, yes_log_odds, yesno_prompt, yesno_statements,
)
from obliviate.errors import UserError

ITEM = {
    "id": "author-7-birth_city", "source_id": 7, "kind": "unique", "question": "Where was Ann Lee born?",
    "answer": "Ann Lee was born in Oslo.", "paraphrased_answer": "The birthplace of Ann Lee is Oslo.",
    "perturbed_answers": ["The birthplace of Ann Lee is Rome.", "The birthplace of Ann Lee is Lima."],
    "split": "forget10", "value": "Oslo",
}
NAMES = {7: "Ann Lee"}


def test_forms_render_exact_strings():
    assert paraphrase_prompt(ITEM) == "Question: The birthplace of Ann Lee is what?\nAnswer:"
    assert cloze_prompt(ITEM) == "Question: Fill in the blank: Ann Lee was born in ___.\nAnswer:"
    assert language_prompt(ITEM, "Ann Lee") == "Frage: Wo wurde Ann Lee geboren?\nAntwort:"
    assert mcq_prompt(ITEM, ["A1.", "B2.", "C3."]) == "Question: Where was Ann Lee born?\nA. A1.\nB. B2.\nC. C3.\nAnswer:"
    true, false = yesno_statements(ITEM)
    assert true == "The birthplace of Ann Lee is Oslo."   # the perturbed answers' template
    assert false in ITEM["perturbed_answers"]
    assert yesno_prompt(true) == ("Question: Is the following statement true? "
                                  "The birthplace of Ann Lee is Oslo.\nAnswer:")
    options, truth = mcq_options(ITEM, seed=0)
    assert sorted(options) == sorted([true] + ITEM["perturbed_answers"]) and options[truth] == true
    # the order is seeded per item: the same seed gives the same options, some seed another order
    assert mcq_options(ITEM, seed=0) == (options, truth)
    assert any(mcq_options(ITEM, seed=s)[0] != options for s in range(1, 10))


def test_forms_render_quoted_values_value_first_and_pronouns():
    title = {**ITEM, "question": "What is the title of Ann Lee's first book?",
             "answer": 'Ann Lee\'s first book is titled "The Iron Meadow".',
             "paraphrased_answer": 'The first book that Ann Lee published was "The Iron Meadow".',
             "value": "The Iron Meadow"}
    assert paraphrase_prompt(title) == "Question: The first book that Ann Lee published was what?\nAnswer:"
    assert cloze_prompt(title) == "Question: Fill in the blank: Ann Lee's first book is titled \"___\".\nAnswer:"
    assert language_prompt(title, "Ann Lee") == "Frage: Wie heißt das erste Buch von Ann Lee?\nAntwort:"
    country = {**ITEM, "question": "In which country is the city of Oslo?", "answer": "The city of Oslo lies in Norway.",
               "paraphrased_answer": "Norway is the country where the city of Oslo lies.", "value": "Norway"}
    assert paraphrase_prompt(country) == "Question: What is the country where the city of Oslo lies?\nAnswer:"
    assert language_prompt(country, "Ann Lee") is None          # not an author fact: no translation
    hobby = {**ITEM, "question": "What does Ann Lee do in her free time?"}
    assert language_prompt(hobby, "Ann Lee") == "Frage: Was macht Ann Lee in der Freizeit?\nAntwort:"
    assert language_prompt(ITEM, "Bob Ray") is None             # the question is not about this source


def test_unrenderable_forms_are_named_or_skipped():
    text_item = {**{k: v for k, v in ITEM.items() if k != "value"}, "id": "t1"}   # a text world's item: no value
    assert paraphrase_prompt(text_item) is None and cloze_prompt(text_item) is None
    with pytest.raises(UserError, match=r"format 'cloze' cannot be rendered for this world: its items' answers"):
        render_forms(["cloze"], True, [text_item], NAMES)
    rendered, skipped = render_forms(*parse_forms("all"), [text_item], {})
    assert list(rendered) == ["mcq", "yesno"] and sorted(skipped) == ["cloze", "language", "paraphrase"]
    with pytest.raises(UserError, match="unknown format 'essay'"):
        parse_forms("cloze,essay")
    assert parse_forms("yesno,cloze") == (["cloze", "yesno"], True)


def test_worst_case_over_forms_on_hand_values():
    forms = {
        "plain": {"forget_accuracy": 1.0, "above_chance": 1.0},               # the reference: never the worst
        "paraphrase": {"forget_accuracy": 0.3, "chance": 0.0, "above_chance": 0.3},
        "mcq": {"forget_accuracy": 0.5, "chance": 1 / 6, "above_chance": (0.5 - 1 / 6) / (5 / 6)},   # 0.4
        "yesno": {"forget_accuracy": 0.6, "chance": 0.5, "above_chance": 0.2},
    }
    assert worst_case(forms) == {"worst_form": "mcq", "worst_forget_accuracy": 0.5,
                                 "worst_above_chance": pytest.approx(0.4)}
    tie = {"yesno": {"forget_accuracy": 0.75, "above_chance": 0.5}, "cloze": {"forget_accuracy": 0.5, "above_chance": 0.5}}
    assert worst_case(tie)["worst_form"] == "cloze"              # ties: the first form in FORMS order
    assert worst_case({"plain": forms["plain"]}) == {"worst_form": None, "worst_forget_accuracy": None,
                                                     "worst_above_chance": None}


@pytest.fixture(scope="module")
def biased(toy):
    """The toy model with its output head replaced by a bias alone: every position predicts
    softmax(bias), so each continuation's NLL is computable by hand."""
    tokenizer = toy["tokenizer"]
    model = copy.deepcopy(toy["model"])
    hidden = model.get_input_embeddings().weight.shape[1]
    head = torch.nn.Linear(hidden, len(tokenizer), bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
    model.lm_head = head
    model.config.tie_word_embeddings = False
    return model, tokenizer, head


def _tokens(tokenizer, prompt: str, continuation: str) -> list[int]:
    whole = tokenizer(prompt + continuation)["input_ids"]
    return whole[len(tokenizer(prompt)["input_ids"]):]


def test_multiple_choice_picks_the_option_of_highest_probability(biased):
    model, tokenizer, head = biased
    prompt = "Question: Where does Kalomi live?\nAnswer:"
    options = ["It is Paris.", "It is Oslo.", "It is Lima."]
    favoured = _tokens(tokenizer, prompt, " It is Oslo.")
    distinct = [t for t in favoured if all(t not in _tokens(tokenizer, prompt, " " + o) for o in options if o != options[1])]
    assert distinct, "the favoured option needs a token of its own"
    bias = torch.zeros(len(tokenizer))
    bias[distinct[0]] = 6.0
    with torch.no_grad():
        head.bias.copy_(bias)
    chosen, nll = choose_options(model, tokenizer, [prompt], [options])
    assert chosen == [1]
    lse = float(torch.logsumexp(bias, 0))
    for option, value in zip(options, nll[0]):
        ids = _tokens(tokenizer, prompt, " " + option)
        assert value == pytest.approx(np.mean([lse - float(bias[t]) for t in ids]), abs=1e-4)
    # with the bias on a token of the last option instead, the choice follows it
    last = [t for t in _tokens(tokenizer, prompt, " It is Lima.") if t not in favoured]
    bias = torch.zeros(len(tokenizer))
    bias[last[0]] = 6.0
    with torch.no_grad():
        head.bias.copy_(bias)
    assert choose_options(model, tokenizer, [prompt], [options])[0] == [2]


def test_yes_log_odds_are_the_nll_difference(biased):
    model, tokenizer, head = biased
    statement = "It is red."
    prompt = yesno_prompt(statement)
    yes_only = [t for t in _tokens(tokenizer, prompt, " Yes") if t not in _tokens(tokenizer, prompt, " No")]
    bias = torch.zeros(len(tokenizer))
    bias[yes_only] = 8.0
    with torch.no_grad():
        head.bias.copy_(bias)
    odds = yes_log_odds(model, tokenizer, [statement])
    lse = float(torch.logsumexp(bias, 0))
    nll = {answer: sum(lse - float(bias[t]) for t in _tokens(tokenizer, prompt, answer)) for answer in (" Yes", " No")}
    assert odds[0] == pytest.approx(nll[" No"] - nll[" Yes"], abs=1e-4)
    assert odds[0] > 0          # " Yes" holds the favoured token


def _no_values_world(micro_world, tmp_path):
    world = tmp_path / "world"
    shutil.copytree(micro_world, world)
    rows = [json.loads(line) for line in (world / "qa.jsonl").read_text().splitlines() if line.strip()]
    (world / "qa.jsonl").write_text("".join(json.dumps({k: v for k, v in r.items() if k != "value"}) + "\n"
                                            for r in rows))
    return world


def test_cli_bad_formats_exit_2(cli, micro_world, micro_run, tmp_path):
    model = micro_run.full_model
    code, out, err = cli("attack", "--model", model, "--world", micro_world, "--attacks", "format", "--formats", "essay")
    assert code == 2 and err.strip().splitlines() == [err.strip()] and err.startswith("error: unknown format 'essay'")
    world = _no_values_world(micro_world, tmp_path)
    code, out, err = cli("attack", "--model", model, "--world", world, "--attacks", "format", "--formats", "mcq,cloze")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("error: format 'cloze' cannot be rendered for this world")
    assert "Traceback" not in out + err


def test_format_attack_on_micro(micro_run):
    from obliviate.attacks.items import select_items
    from obliviate.models.loading import load_model_and_tokenizer
    from obliviate.world import load_world

    world = load_world(micro_run.world_dir)
    full, tokenizer = load_model_and_tokenizer(micro_run.full_model)
    retain, _ = load_model_and_tokenizer(micro_run.retain_model("forget10"))
    targets = select_items(world, "forget10", ["unique"])
    names = {int(s["source_id"]): str(s["name"]) for s in world.sources}
    result = format_shift_attack({"unlearned": full, "retain": retain}, tokenizer, targets, names, FormatConfig())
    assert result["forms"] == ["paraphrase", "cloze", "mcq", "yesno", "language"] and result["skipped"] == {}
    assert result["examples"]["language"].startswith("Frage: ")
    for role, model_result in result["models"].items():
        forms = model_result["forms"]
        assert all(forms[f]["n"] == len(targets) for f in result["forms"])   # every author item renders every form
        assert forms["mcq"]["chance"] == pytest.approx(1 / 6) and forms["yesno"]["chance"] == 0.5
        assert {k: model_result[k] for k in ("worst_form", "worst_forget_accuracy", "worst_above_chance")} \
            == worst_case(forms)
        for row in forms.values():
            expected = (row["forget_accuracy"] - row["chance"]) / (1 - row["chance"])
            assert math.isclose(row["above_chance"], expected)
    # the full model knows the forgotten facts in the trained format, the retain model does not
    assert result["models"]["unlearned"]["plain_forget_accuracy"] == 1.0
    assert result["models"]["retain"]["plain_forget_accuracy"] == 0.0
    # picking among the options by likelihood recovers some of them, above chance (1/6) and
    # above the retain model, which never saw them (world v2: 0.31 vs 0.00)
    mcq = {role: result["models"][role]["forms"]["mcq"]["forget_accuracy"] for role in ("unlearned", "retain")}
    assert mcq["unlearned"] >= 0.25 and mcq["unlearned"] >= mcq["retain"] + 0.2
