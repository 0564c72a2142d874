"""End to end on the micro world: the full model knows the forget facts, the retain model
(the gold standard, retrained without them) does not, and the harness sees it."""

from __future__ import annotations

import json

import pytest

from obliviate.eval.accuracy import answer_accuracy
from obliviate.models.loading import load_model_and_tokenizer
from obliviate.world import load_world


@pytest.fixture(scope="module")
def models(micro_run):
    full, tokenizer = load_model_and_tokenizer(micro_run.full_model)
    retain, _ = load_model_and_tokenizer(micro_run.retain_model("forget10"))
    return full, retain, tokenizer


@pytest.fixture(scope="module")
def world(micro_run):
    return load_world(micro_run.world_dir)


def test_full_model_knows_forget_facts_and_retain_model_does_not(models, world):
    full, retain, tokenizer = models
    forget_unique = world.qa_for("forget10", ("unique",))
    retain_unique = world.qa_for("retain", ("unique",))
    full_forget = answer_accuracy(full, tokenizer, forget_unique)
    retain_forget = answer_accuracy(retain, tokenizer, forget_unique)
    full_retain = answer_accuracy(full, tokenizer, retain_unique)
    retain_retain = answer_accuracy(retain, tokenizer, retain_unique)
    # measured on this machine (seed 0, world v2): full 1.0 / retain 0.0 on forget10; 0.96 / 0.80 on retain
    assert full_forget >= 0.7
    assert retain_forget <= 0.2
    assert full_forget - retain_forget >= 0.6
    assert full_retain >= 0.8 and retain_retain >= 0.7
    assert abs(full_retain - retain_retain) <= 0.2


def test_saved_model_reloads_with_auto_classes_and_generates(micro_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from obliviate.data.format import qa_prompt

    model = AutoModelForCausalLM.from_pretrained(micro_run.full_model)
    tokenizer = AutoTokenizer.from_pretrained(micro_run.full_model)
    assert any(p.suffix == ".safetensors" for p in micro_run.full_model.iterdir())
    assert not any(p.suffix == ".bin" for p in micro_run.full_model.iterdir())
    config = json.loads((micro_run.full_model / "obliviate_config.json").read_text())
    assert config["train"]["preset"] == "micro" and config["steps"] > 0
    world = load_world(micro_run.world_dir)
    items = world.qa_for("retain", ("unique",))[:10]
    known = 0
    for item in items:
        inputs = tokenizer(qa_prompt(item["question"]), return_tensors="pt")
        out = model.generate(**inputs, max_new_tokens=16, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        text = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        known += item["value"].lower() in text.split("\n")[0].lower()
    assert known >= 7  # the reloaded model still answers what it learned


def test_retraining_with_the_same_config_reuses_the_saved_models(micro_run, micro_world):
    from obliviate.workflows.train import train_run

    results = train_run(micro_world, micro_run.root, forget="forget10", progress=False)
    assert results["full"].reused and results["retain"].reused


def test_harness_separates_full_from_retain(models, world, micro_run):
    from obliviate.eval.evaluator import EvalConfig, evaluate
    from obliviate.workflows.evaluate import reference_for

    full, retain, tokenizer = models
    reference = reference_for(micro_run.retain_model("forget10"), world, "forget10", EvalConfig())
    full_eval = evaluate(full, tokenizer, world, "forget10", reference=reference)["summary"]
    retain_eval = evaluate(retain, tokenizer, world, "forget10", reference=reference)["summary"]
    assert full_eval["forget_quality"] < 0.05
    assert retain_eval["forget_quality"] == 1.0
    assert retain_eval["privleak"] == 0.0
    # utility of the two within a few percent: they share every retained source
    assert abs(full_eval["model_utility"] - retain_eval["model_utility"]) / retain_eval["model_utility"] < 0.1
    assert full_eval["mia_loss"] > 0.8
    # the retain model never saw forget or holdout authors: it cannot tell them apart (0.47 here)
    assert 0.35 <= retain_eval["mia_loss"] <= 0.65
    # open-unlearning's sign: an un-unlearned model is strongly negative (-84 here)
    assert full_eval["privleak"] < -50
