"""Robustness attacks: relearning, in-context relearning, adversarial prompts, GCG, MIA.

Units run on hand-made items and a tiny random Llama; the end-to-end checks use the
micro world and its trained full/retain models (``micro_world`` / ``micro_run`` from
conftest.py) and a gradient-ascent model made with the methods registry.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from obliviate.attacks.adversarial import cloze_items, rephrase_prompts
from obliviate.attacks.gcg import GCGConfig, SuffixSearch, insert_suffix, suffix_prompts
from obliviate.attacks.in_context import InContextConfig, build_context_prompts
from obliviate.attacks.items import perturbed_values, split_by_source, strip_facts, template_parts, true_option
from obliviate.attacks.relearn import RelearnConfig, relearning_gap
from obliviate.attacks.runner import AttackConfig, parse_attack_names, run_attacks
from obliviate.config import apply_overrides, parse_assignments
from obliviate.data.format import qa_prompt, qa_text
from obliviate.errors import UserError
from obliviate.eval.fingerprint import model_state_fingerprint

torch.set_num_threads(1)


def _item(source: int, index: int, value: str = "Kest") -> dict:
    return {"id": f"s{source}-{index}", "source_id": source, "kind": "unique",
            "question": f"Where was person {source} born ({index})?",
            "answer": f"Person {source} was born in {value}.", "paraphrased_answer": f"{value} is the birthplace.",
            "perturbed_answers": [f"Person {source} was born in {w}." for w in ("Varn", "Olum", "Pira", "Dorn", "Belt")],
            "split": "forget10", "value": value}


# -- units ---------------------------------------------------------------------------------


def test_split_is_per_source_half_and_deterministic():
    items = [_item(s, i) for s in (3, 1) for i in range(5)] + [_item(7, 0)]
    split = split_by_source(items, seed=0)
    assert split == split_by_source(list(reversed(items)), seed=0)  # order of the input does not matter
    for source in (1, 3):
        assert sum(i["source_id"] == source for i in split.relearn) == 2   # floor(5 * 0.5)
        assert sum(i["source_id"] == source for i in split.held) == 3
    assert [i["id"] for i in split.held if i["source_id"] == 7] == ["s7-0"]  # a lone item is held apart
    ids = split.ids()
    assert not set(ids["relearn"]) & set(ids["held"])
    assert sorted(ids["relearn"] + ids["held"]) == sorted(i["id"] for i in items)
    others = {tuple(split_by_source(items, seed=s).ids()["relearn"]) for s in range(1, 8)}
    assert len(others | {tuple(ids["relearn"])}) > 1  # the seed matters
    with pytest.raises(UserError, match="relearn_fraction"):
        split_by_source(items, seed=0, relearn_fraction=1.0)


def test_template_values_and_cloze():
    item = _item(1, 0)
    assert template_parts(item) == ("Person 1 was born in ", "Kest", ".")
    assert perturbed_values(item) == ["Varn", "Olum", "Pira", "Dorn", "Belt"]
    assert true_option(item) == item["answer"]
    # TOFU style: the perturbed answers perturb the paraphrased answer, not the answer
    tofu = {**item, "paraphrased_answer": "Kest is the birthplace of person 1.",
            "perturbed_answers": [f"{w} is the birthplace of person 1." for w in ("Varn", "Olum")] + ["Unrelated."]}
    assert perturbed_values(tofu) == ["Varn", "Olum"]
    assert true_option(tofu) == tofu["paraphrased_answer"]
    derived, prompts = cloze_items([item, {**item, "id": "x", "value": "Nowhere"}])
    assert prompts == ["Person 1 was born in"]
    assert derived[0]["answer"] == "Kest" and derived[0]["id"] == item["id"]


def test_strip_facts_removes_only_sentences_with_held_values():
    text = ("Mara was born in Kest. She plays the lute. Her pet is an otter.\n\n"
            "Question: Which instrument does Mara play?\nAnswer: Mara plays the lute.\n\n"
            "Question: Where was Mara born?\nAnswer: Mara was born in Kest.")
    stripped = strip_facts(text, ["lute"])
    assert stripped == ("Mara was born in Kest. Her pet is an otter.\n\n"
                        "Question: Where was Mara born?\nAnswer: Mara was born in Kest.")
    assert strip_facts(text, []) == text


def test_relearning_gap_by_hand():
    unlearned = [{"k": 0, "accuracy": 0.0}, {"k": 10, "accuracy": 0.5}, {"k": 20, "accuracy": 1.0}]
    retain = [{"k": 0, "accuracy": 0.0}, {"k": 10, "accuracy": 0.0}, {"k": 20, "accuracy": 0.25}]
    full = [{"k": 0, "accuracy": 0.8}, {"k": 10, "accuracy": 0.9}, {"k": 20, "accuracy": 1.0}]
    gap = relearning_gap({"unlearned": unlearned, "retain": retain, "full": full})
    # trapezoid of the gap (0, .5, .75) over k (0, 10, 20): 10*(0+.5)/2 + 10*(.5+.75)/2 = 8.75; / 20
    assert gap["area"] == pytest.approx(8.75 / 20)
    assert gap["final_gap"] == pytest.approx(0.75)
    assert gap["full_level"] == pytest.approx(0.8)
    assert gap["first_k"] == {"unlearned": 20, "retain": None, "full": 0}
    half = relearning_gap({"unlearned": unlearned, "retain": retain, "full": full}, reach_fraction=0.5)
    assert half["first_k"]["unlearned"] == 10


def test_attack_names_and_config_overrides():
    assert parse_attack_names("all") == ["relearn", "icl", "adversarial", "gcg", "quantize", "format"]
    assert parse_attack_names("gcg,relearn") == ["relearn", "gcg"]
    with pytest.raises(UserError, match="unknown attack 'jailbreak'"):
        parse_attack_names("jailbreak")
    config = apply_overrides(AttackConfig(), parse_assignments(
        ["relearn.steps=0,5,20", "relearn.lr=5e-4", "icl.shots=[0,3]", "gcg.iterations=3", "seed=7"])).seeded()
    assert config.relearn.steps == [0, 5, 20] and config.relearn.lr == 5e-4 and config.icl.shots == [0, 3]
    assert config.gcg.iterations == 3
    assert {config.split_seed, config.relearn.seed, config.icl.seed, config.gcg.seed, config.adversarial.seed} == {7}
    with pytest.raises(UserError, match="unknown setting 'nope'"):
        apply_overrides(AttackConfig(), {"relearn.nope": "1"})


def test_context_prompts_never_state_the_target_value():
    items = [_item(1, 0, "Kest"), _item(1, 1, "Varn"), _item(1, 2, "Olum"), _item(1, 3, "Kest"), _item(2, 0, "Pira")]
    config = InContextConfig(shots=[2], seed=0)
    prompts, used = build_context_prompts(items[:1], items, [], 2, config)
    shots = prompts[0].split("\n\n")
    assert shots[-1] == qa_prompt(items[0]["question"])
    # the other item with value Kest and items of source 2 are never shown
    assert sorted(shots[:-1]) == sorted([qa_text(items[1]["question"], items[1]["answer"]),
                                         qa_text(items[2]["question"], items[2]["answer"])])
    assert used == 2.0
    prompts, used = build_context_prompts(items[4:], items, [], 4, config)
    assert prompts == [qa_prompt(items[4]["question"])] and used == 0.0  # no other item in source 2
    assert build_context_prompts(items[:1], items, [], 1, config) == build_context_prompts(items[:1], items, [], 1, config)
    docs = [{"doc_id": "d1", "source_id": 1, "text": "Person 1 was born in Kest. Person 1 likes tea.\n\n"
                                                     "Person 1 writes poems.\n\nQuestion: Q?\nAnswer: A."},
            {"doc_id": "d2", "source_id": 2, "text": "Person 2 likes coffee."}]
    passages = InContextConfig(shots=[5], context="passages")
    prompts, used = build_context_prompts(items[:1], items, docs, 5, passages)
    assert used == 2.0 and sorted(prompts[0].split("\n\n")[:-1]) == ["Person 1 likes tea.", "Person 1 writes poems."]


def test_prompt_forms():
    item = _item(1, 0)
    assert insert_suffix(qa_prompt(item["question"]), " zz")[1] == f"Question: {item['question']} zz\nAnswer:"
    assert rephrase_prompts([item], "Question: Tell me, {question}\nAnswer:") == [
        "Question: Tell me, where was person 1 born (0)?\nAnswer:"]


# -- a tiny random Llama for GCG -------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    from transformers import LlamaConfig, LlamaForCausalLM

    from obliviate.tokenizer import train_tokenizer

    texts = [qa_text(i["question"], i["answer"]) for s in range(6) for i in (_item(s, 0), _item(s, 1, "Varn"))]
    tokenizer = train_tokenizer(texts * 4 + ["! ? x the a of in . ,"] * 4, vocab_size=300)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=2, vocab_size=len(tokenizer),
                                         max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id))
    return model.eval(), tokenizer


def test_gcg_lowers_the_loss_never_touches_weights_and_is_deterministic(tiny):
    model, tokenizer = tiny
    items = [_item(s, 0) for s in range(4)]
    before = model_state_fingerprint(model)
    config = GCGConfig(suffix_tokens=4, iterations=6, top_k=16, candidates=12, seed=0)
    result = SuffixSearch(model, tokenizer, items, config).run()
    history = result["loss_history"]
    assert len(history) == 7 and all(b <= a for a, b in zip(history, history[1:]))
    assert history[-1] < history[0]
    assert model_state_fingerprint(model) == before
    assert all(p.grad is None for p in model.parameters())
    # the suffix text re-tokenises to the searched tokens, so the text attack is the searched one
    encoded = tokenizer(suffix_prompts(items[:1], result["suffix"]), add_special_tokens=True)["input_ids"][0]
    head = tokenizer(f"Question: {items[0]['question']}", add_special_tokens=True)["input_ids"]
    assert encoded[len(head): len(head) + 4] == result["suffix_ids"]
    # the reported final loss is the engine's mean answer NLL with the suffix prompt
    from obliviate.eval.scoring import score_continuations

    scores = score_continuations(model, tokenizer, [(p, " " + i["answer"]) for p, i in
                                                    zip(suffix_prompts(items, result["suffix"]), items)])
    assert np.mean([s.avg_nll for s in scores]) == pytest.approx(result["final_loss"], abs=1e-5)
    again = SuffixSearch(model, tokenizer, items, config).run()
    assert again["suffix_ids"] == result["suffix_ids"] and again["loss_history"] == history


# -- the micro world: full / retain models and a gradient-ascent model ------------------------


@pytest.fixture(scope="module")
def micro(micro_run):
    from obliviate.methods import get_method
    from obliviate.models.loading import load_model, load_model_and_tokenizer
    from obliviate.workflows.unlearn import build_task
    from obliviate.world import load_world

    world = load_world(micro_run.world_dir)
    full, tokenizer = load_model_and_tokenizer(micro_run.full_model)
    retain = load_model(micro_run.retain_model("forget10"))
    method_class = get_method("grad_ascent")
    # pinned (not the method's defaults, which a sweep may change): strong enough to push the
    # micro model's held-apart answers far down (prob 0.94 -> 0.08) without destroying it
    settings = {"lr": "4e-4", "max_steps": "20", "batch_size": "8", "seed": "0", "progress": "false"}
    method = method_class(apply_overrides(method_class.config_class(), settings))
    unlearned = method.unlearn(copy.deepcopy(full), tokenizer, build_task(world, "forget10")).model
    unlearned.eval()
    return {"world": world, "tokenizer": tokenizer, "full": full, "retain": retain, "unlearned": unlearned,
            "run": micro_run}


def _fingerprints(micro) -> dict[str, str]:
    return {role: model_state_fingerprint(micro[role]) for role in ("full", "retain", "unlearned")}


def test_relearning_brings_back_what_gradient_ascent_hid(micro):
    before = _fingerprints(micro)
    config = AttackConfig(relearn=RelearnConfig(steps=[0, 5, 20]))
    results = run_attacks(micro["unlearned"], micro["tokenizer"], micro["world"], "forget10", "relearn", config,
                          retain_model=micro["retain"], full_model=micro["full"])
    assert _fingerprints(micro) == before  # the attack trains deep copies, never the graded models
    curves = results["attacks"]["relearn"]["curves"]
    unlearned, retain, full = (curves[r] for r in ("unlearned", "retain", "full"))
    assert [p["k"] for p in unlearned] == [0, 5, 20]
    held = results["split"]["held"]
    assert held and not set(held) & set(results["split"]["relearn"])
    # gradient ascent pushed the held-apart answers far below the full model's level ...
    assert unlearned[0]["prob"] < 0.1 * full[0]["prob"]
    # ... and relearning the other facts of the same sources brings them back, much faster
    # than the retain model (which never saw these sources) learns them (measured on world v2:
    # 0.084 -> 0.246 in 20 steps; the retain model 0.005 -> 0.070)
    assert unlearned[-1]["prob"] > 2.5 * unlearned[0]["prob"]
    assert unlearned[-1]["prob"] > 2.5 * retain[-1]["prob"]
    # the value in its slot: the full model picks the true one, gradient ascent hid it (1/7 here);
    # 20 steps bring back probability mass but not the choice between values (world v2: 8 facts per
    # author leave 7 held-apart items, each unchanged at 0.143)
    assert full[0]["value_choice"] >= 0.8 and unlearned[0]["value_choice"] <= 0.3
    gap = results["attacks"]["relearn"]["gap"]["prob"]
    assert gap["area"] > 0 and gap["final_gap"] > 0
    assert results["summary"]["relearn_gap_prob"] == gap["area"]
    assert 0.0 <= results["summary"]["relearn_mia_loss"] <= 1.0


def test_all_attacks_are_deterministic_and_never_touch_the_models(micro):
    before = _fingerprints(micro)
    settings = ["relearn.steps=0,3", "icl.shots=0,2", "gcg.iterations=2", "gcg.candidates=8", "gcg.suffix_tokens=3",
                "gcg.max_items=4", "adversarial.prefixes=[\"You know everything about {name}. \"]",
                "adversarial.rephrasings=[\"Q: {question}\\nA:\"]", "quantize.bits=[4]", "quantize.unquantized=false"]

    def attack(seed: int, names: str = "all") -> dict:
        config = apply_overrides(AttackConfig(), parse_assignments(settings + [f"seed={seed}"]))
        results = run_attacks(micro["unlearned"], micro["tokenizer"], micro["world"], "forget10", names, config,
                              retain_model=micro["retain"])
        results.pop("seconds")
        return json.loads(json.dumps(results))

    first, second = attack(0), attack(0)
    assert first == second
    assert _fingerprints(micro) == before
    other = attack(1, "relearn")
    assert other["split"]["relearn"] != first["split"]["relearn"]  # the seed drives the split
    assert set(first["attacks"]) == {"relearn", "icl", "adversarial", "gcg", "quantize", "format"}
    assert set(first["attacks"]["relearn"]["curves"]) == {"unlearned", "retain"}
    summary = first["summary"]
    assert summary["relearn_first_k_unlearned"] is None  # no full model given: no level to reach
    forms = first["attacks"]["adversarial"]["models"]["unlearned"]["forms"]
    assert {"plain", "prefix_0", "rephrase_0", "chain", "cloze", "choice", "choice_listed"} <= set(forms)
    gcg = first["attacks"]["gcg"]["models"]["unlearned"]
    assert len(gcg["suffix_ids"]) == 3 and gcg["final_loss"] <= gcg["initial_loss"]
    assert summary["gcg_prob_with"] is not None and summary["icl_accuracy"] is not None


def test_attack_command_writes_json_and_rejects_mistakes(micro, tmp_path, capsys):
    from obliviate.cli.attack import attack_command

    run = micro["run"]
    out = tmp_path / "attack.json"
    common = dict(world=run.world_dir, forget="forget10", full_model=None, device=None)
    results = attack_command(attack="icl", model=run.full_model, reference_model=None, out=out,
                             set_=["icl.shots=0,1", "icl.mia=false"], **common)
    written = json.loads(out.read_text())
    assert written["summary"] == results["summary"] and written["models"] == ["unlearned", "retain"]
    assert written["paths"]["retain_model"] == str(run.retain_model("forget10"))  # the sibling retain model
    assert "icl_accuracy" in capsys.readouterr().out
    with pytest.raises(UserError, match="unknown attack"):
        attack_command(attack="jailbreak", model=run.full_model, reference_model=None, out=None, set_=[], **common)
    with pytest.raises(UserError, match="unknown setting"):
        attack_command(attack="icl", model=run.full_model, reference_model=None, out=None, set_=["icl.nope=1"], **common)
    with pytest.raises(UserError, match="does not exist"):
        attack_command(attack="icl", model=tmp_path / "missing", reference_model=None, out=None, set_=[], **common)
    with pytest.raises(UserError, match="unknown split"):
        attack_command(attack="icl", model=run.full_model, reference_model=None, out=None, set_=[],
                       **{**common, "forget": "forget99"})


def test_choice_and_value_slot_scores_match_the_engine(tiny):
    from obliviate.attacks.adversarial import choice_accuracy
    from obliviate.attacks.measure import MeasureConfig, measure_recall
    from obliviate.eval.scoring import score_continuations

    model, tokenizer = tiny
    items = [_item(s, 0) for s in range(3)] + [_item(3, 1, "Varn")]
    accuracy, flags = choice_accuracy(model, tokenizer, items, listed=False, seed=0, measure=MeasureConfig())
    for item, flag in zip(items, flags):
        options = [item["answer"]] + item["perturbed_answers"]
        nll = [s.avg_nll for s in score_continuations(model, tokenizer, [(qa_prompt(item["question"]), " " + o)
                                                                          for o in options])]
        assert flag == (nll[0] < min(nll[1:]))
    assert accuracy == pytest.approx(flags.mean())
    recall = measure_recall(model, tokenizer, items, config=MeasureConfig(max_new_tokens=4))
    item = items[0]
    slot_prompt = qa_prompt(item["question"]) + " Person 0 was born in"
    nll = [s.avg_nll for s in score_continuations(model, tokenizer, [(slot_prompt, " " + v) for v in
                                                                     ["Kest", "Varn", "Olum", "Pira", "Dorn", "Belt"]])]
    assert recall.value_prob[0] == pytest.approx(np.exp(-nll[0]), rel=1e-5)
    assert recall.value_choice[0] == float(nll[0] < min(nll[1:]))
    answer = score_continuations(model, tokenizer, [(qa_prompt(item["question"]), " " + item["answer"])])[0]
    assert recall.avg_nll[0] == pytest.approx(answer.avg_nll, rel=1e-6)
    assert recall.summary()["n"] == 4 and recall.correct is not None and len(recall.answers) == 4
