"""Post-hoc unlearning methods on a self-contained toy task (tests/methods_toy.py).

The toy: 30 made-up people x 2 facts; 10 people (20 QA items) form ``forget10``, 20
people (40 items) ``retain``. A tiny Llama (hidden 32, 2 layers) fine-tuned on all of
them answers every fact greedily (accuracy 1.0 / 1.0). Each method must bring the
forget accuracy far down while the retain accuracy stays above a bound measured on
this toy (measured values in ``CASES``; bounds leave ~0.15 of slack).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re

import pytest
import torch

from obliviate.config import apply_overrides
from obliviate.errors import UserError
from obliviate.methods import available_methods, get_method
from obliviate.methods.data import PairedDataset, PartsCollator, encode_documents, encode_qa
from obliviate.workflows.unlearn import build_task, run_unlearning

TRAINER_METHODS = ("grad_ascent", "grad_diff", "npo", "simnpo", "rmu", "idk_dpo")


import methods_toy as toy_module  # tests/ is on sys.path under pytest


@pytest.fixture(scope="module")
def task(toy):
    return build_task(toy["world"], "forget10")


def run_method(toy, task, name: str, overrides: dict):
    method_class = get_method(name)
    method = method_class(apply_overrides(method_class.config_class(), {"progress": "false", **overrides}))
    result = method.unlearn(copy.deepcopy(toy["model"]), toy["tokenizer"], task)
    return method, result.model, result


def accuracies(toy, model) -> tuple[float, float]:
    return (toy_module.greedy_accuracy(model, toy["tokenizer"], toy["forget_items"]),
            toy_module.greedy_accuracy(model, toy["tokenizer"], toy["retain_items"]))


# ---- data ---------------------------------------------------------------------------------


def test_forget_examples_label_only_the_answer_tokens(toy):
    tokenizer = toy["tokenizer"]
    item = toy["forget_items"][0]
    example = encode_qa(tokenizer, [item])[0]
    labelled = [t for t in example["labels"] if t != -100]
    first = example["labels"].index(labelled[0])
    assert all(label == -100 for label in example["labels"][:first])
    assert tokenizer.decode(labelled) == " " + item["answer"]
    assert tokenizer.decode(example["input_ids"]) == f"Question: {item['question']}\nAnswer: {item['answer']}"
    # another answer to the same question keeps the same prompt tokens
    other = encode_qa(tokenizer, [item], answers=["I don't know."])[0]
    assert other["input_ids"][:first] == example["input_ids"][:first]
    assert tokenizer.decode([t for t in other["labels"] if t != -100]) == " I don't know."


def test_paired_dataset_cycles_the_shorter_part_and_collator_pads_all_parts_alike():
    dataset = PairedDataset({"forget": [{"input_ids": [5, 6], "labels": [-100, 6]}],
                             "retain": [{"input_ids": [7], "labels": [7]}, {"input_ids": [8, 9, 10], "labels": [8, 9, 10]}]})
    assert len(dataset) == 2
    batch = PartsCollator(pad_token_id=0)([dataset[0], dataset[1]])
    assert batch["forget"]["input_ids"].tolist() == [[5, 6, 0], [5, 6, 0]]
    assert batch["forget"]["labels"].tolist() == [[-100, 6, -100], [-100, 6, -100]]
    assert batch["retain"]["input_ids"].tolist() == [[7, 0, 0], [8, 9, 10]]
    assert batch["retain"]["attention_mask"].tolist() == [[1, 0, 0], [1, 1, 1]]
    with pytest.raises(UserError, match="no training examples for: retain"):
        PairedDataset({"forget": [{"input_ids": [1], "labels": [1]}], "retain": []})


def test_documents_are_cut_into_labelled_windows(toy):
    tokenizer = toy["tokenizer"]
    doc = {"text": toy["world"].corpus[0]["text"]}
    ids = tokenizer(doc["text"], add_special_tokens=False)["input_ids"]
    windows = encode_documents(tokenizer, [doc], max_length=6)   # <s> + 4 tokens + </s>
    assert len(windows) == math.ceil(len(ids) / 4)
    assert [w["input_ids"][1:-1] for w in windows] == [ids[i:i + 4] for i in range(0, len(ids), 4)]
    assert all(w["input_ids"][0] == tokenizer.bos_token_id and w["input_ids"][-1] == tokenizer.eos_token_id
               and w["labels"] == w["input_ids"] for w in windows)
    with pytest.raises(UserError, match="no room"):
        encode_documents(tokenizer, [doc], max_length=2)


def test_build_task_selects_forget_and_retain_sources(toy, task):
    assert task.forget_sources == set(range(10)) and task.retain_sources == set(range(10, 30))
    assert len(task.forget_items) == 20 and len(task.retain_items) == 40
    assert {d["source_id"] for d in task.forget_docs} == task.forget_sources
    assert not {q["id"] for q in task.forget_items} & {q["id"] for q in task.retain_items}


def test_the_full_toy_model_knows_every_fact(toy):
    assert toy["forget_acc"] == 1.0 and toy["retain_acc"] == 1.0


# ---- every method forgets and (where it has a retain term) keeps -------------------------

# method: (overrides for the toy, retain-accuracy bound or None). Measured forget / retain
# greedy accuracy (full model 1.00 / 1.00; a model retrained on retain only: 0.10 / 1.00,
# the chance floor of guessing a colour or city): grad_ascent 0.10 / 0.17 (no retain
# term: the whole model collapses), grad_diff 0.15 / 0.93, npo 0.20 / 0.93,
# simnpo 0.05 / 0.93, rmu 0.30 / 0.88, idk_dpo 0.20 / 1.00.
FORGET_BOUND = 0.4
CASES = {
    "grad_ascent": ({"lr": "2e-4"}, None),
    "grad_diff": ({"lr": "1e-3", "retain_weight": "5", "max_steps": "50"}, 0.8),
    "npo": ({"lr": "5e-4", "retain_weight": "5", "max_steps": "30"}, 0.8),
    "simnpo": ({"lr": "5e-4", "max_steps": "50"}, 0.8),
    "rmu": ({"lr": "3e-3", "layer": "1", "retain_weight": "100", "max_steps": "40"}, 0.75),
    "idk_dpo": ({"lr": "4e-3", "max_steps": "60"}, 0.85),
}

# NPO at the reference: (2/b) ln 2 with b = 0.1; DPO at the reference: ln 2
FIRST_STEP_FORGET_LOSS = {"npo": 20 * math.log(2), "idk_dpo": math.log(2)}


@pytest.mark.parametrize("name", list(CASES))
def test_method_forgets_the_forget_split_and_keeps_retain(toy, task, name):
    overrides, retain_bound = CASES[name]
    method, model, result = run_method(toy, task, name, overrides)
    forget_acc, retain_acc = accuracies(toy, model)
    assert forget_acc <= FORGET_BOUND, f"{name}: forget accuracy {forget_acc} (full model 1.0)"
    if retain_bound is not None:
        assert retain_acc >= retain_bound, f"{name}: retain accuracy {retain_acc} < {retain_bound}"
    assert result.steps == int(overrides.get("max_steps", method.config.max_steps))
    logged = [entry for entry in result.log_history if "forget_loss" in entry]
    assert len(logged) == result.steps
    if retain_bound is not None:
        assert all("retain_loss" in entry for entry in logged)
    if name in FIRST_STEP_FORGET_LOSS:   # at step 1 the model is its reference
        assert logged[0]["forget_loss"] == pytest.approx(FIRST_STEP_FORGET_LOSS[name], abs=1e-4)
    assert not any(p.requires_grad is False for p in model.parameters())
    assert not model.training


def test_all_six_methods_are_registered():
    assert set(TRAINER_METHODS) <= set(available_methods())


def test_grad_diff_with_kl_retain_term_uses_the_reference(toy, task):
    # measured: forget 0.10 / retain 0.80; the KL term starts at 0 (model == reference)
    method, model, result = run_method(toy, task, "grad_diff", {"lr": "1e-3", "retain_loss": "kl", "retain_weight": "5",
                                                        "max_steps": "40"})
    forget_acc, retain_acc = accuracies(toy, model)
    assert forget_acc <= FORGET_BOUND and retain_acc >= 0.65
    first = next(entry for entry in result.log_history if "retain_loss" in entry)
    assert first["retain_loss"] == pytest.approx(0.0, abs=1e-6)


def test_document_mode_trains_on_corpus_text(toy, task):
    method, model, result = run_method(toy, task, "grad_diff", {"forget_data": "docs", "retain_data": "docs", "max_steps": "3",
                                                        "lr": "1e-3"})
    first = result.log_history[0]
    # forget loss is -NLL of the forget documents, which the model never saw verbatim: > 1 nat/token
    assert first["forget_loss"] < -1.0 and first["retain_loss"] > 1.0
    assert first["forget_loss"] == pytest.approx(-first["retain_loss"], rel=0.5)


def test_rmu_trains_only_the_parameters_matching_its_regex(toy, task):
    method, model, result = run_method(toy, task, "rmu", {"layer": "0", "max_steps": "3", "lr": "1e-3"})
    # the auto steering coefficient: steering_scale (4) x the mean hidden norm, logged once
    coefficients = [entry["steering_coeff"] for entry in result.log_history if "steering_coeff" in entry]
    assert len(coefficients) == 1 and coefficients[0] > 0
    before = dict(toy["model"].named_parameters())
    changed = {name for name, p in model.named_parameters() if not torch.equal(p.cpu(), before[name].cpu())}
    # default for layer 0: the MLP of layer 0 only
    assert changed == {"model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight",
                       "model.layers.0.mlp.down_proj.weight"}


def test_rmu_finds_the_decoder_layers_of_other_architectures():
    from transformers import GPT2Config, GPT2LMHeadModel

    from obliviate.methods.rmu import default_param_regex, find_decoder_layers

    gpt2 = GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=3, n_head=2, vocab_size=50, n_positions=32))
    name, layers = find_decoder_layers(gpt2)
    assert name == "transformer.h" and layers is gpt2.transformer.h
    assert find_decoder_layers(gpt2, "transformer.h")[1] is layers
    pattern = re.compile(default_param_regex(name, 2))
    chosen = {n for n, _ in gpt2.named_parameters() if pattern.search(n)}
    assert chosen == {f"transformer.h.{i}.mlp.{m}.{p}" for i in range(3) for m in ("c_fc", "c_proj")
                      for p in ("weight", "bias")}


def test_truth_ratio_target_stops_training_early(toy, task):
    method, _, result = run_method(toy, task, "grad_diff", {"lr": "1e-3", "retain_weight": "10", "max_steps": "100",
                                                    "stop_truth_ratio": "0.5", "eval_every": "2"})
    checks = [entry["forget_truth_ratio"] for entry in result.log_history if "forget_truth_ratio" in entry]
    # measured: 0.43, 0.41, 0.47, 0.51 at steps 2, 4, 6, 8 (full model 0.41)
    assert result.steps < 100 and result.steps % 2 == 0
    assert checks[-1] >= 0.5 and all(value < 0.5 for value in checks[:-1])
    assert len(checks) == result.steps // 2


def test_lora_run_merges_into_a_plain_model(toy, task, tmp_path):
    from transformers import LlamaForCausalLM

    from obliviate.models.loading import load_model, save_model

    targets = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    _, model, _ = run_method(toy, task, "simnpo", {"lora": "true", "lr": "5e-3", "max_steps": "30",
                                                "lora_target_modules": targets})
    assert type(model) is LlamaForCausalLM
    assert not any("lora" in name for name in model.state_dict())
    assert all(p.requires_grad for p in model.parameters())   # a plain model again: attacks can fine-tune it
    forget_acc, retain_acc = accuracies(toy, model)   # measured 0.10 / 0.95
    assert forget_acc <= FORGET_BOUND and retain_acc >= 0.8
    save_model(model, toy["tokenizer"], tmp_path / "merged")
    reloaded = load_model(tmp_path / "merged")
    probe = torch.tensor([[3, 4, 5, 6]])
    model.cpu()   # the Trainer leaves it on a GPU when there is one; load_model loads on the CPU
    assert torch.allclose(reloaded(probe).logits, model(probe).logits, atol=1e-5)


# ---- end to end: save, reload, evaluate against a retain model -------------------------


@pytest.fixture(scope="module")
def toy_run(toy, tmp_path_factory):
    """RUN/models/full and RUN/models/retain. The "retain" model is the full model itself:
    the test checks the grading wiring, not the grade, and this saves a second fine-tune."""
    from obliviate.models.loading import save_model

    root = tmp_path_factory.mktemp("toy_run")
    for role in ("full", "retain"):
        save_model(toy["model"], toy["tokenizer"], root / "models" / role, run_config={"forget": "forget10"})
    return root


def test_reference_model_from_a_path(toy, task, toy_run):
    # the retain dir holds a copy of the full model: NPO starts exactly at its reference
    with_reference = dataclasses.replace(task, reference_path=toy_run / "models" / "retain")
    method_class = get_method("npo")
    method = method_class(apply_overrides(method_class.config_class(), {"progress": "false", "max_steps": "2"}))
    result = method.unlearn(copy.deepcopy(toy["model"]), toy["tokenizer"], with_reference)
    assert result.log_history[0]["forget_loss"] == pytest.approx(20 * math.log(2), abs=1e-4)
    with pytest.raises(UserError, match="model path does not exist"):
        method.unlearn(copy.deepcopy(toy["model"]), toy["tokenizer"],
                       dataclasses.replace(task, reference_path=toy_run / "missing"))


def test_run_unlearning_saves_and_evaluates_against_the_retain_model(toy, toy_run):
    from obliviate.models.loading import load_model_and_tokenizer, read_run_config

    out = toy_run / "models" / "simnpo"
    result = run_unlearning("simnpo", toy_run / "models" / "full", toy["world"].root, "forget10", out,
                            {"lr": "5e-4", "max_steps": "30", "progress": "false"}, evaluate=True)
    config = read_run_config(out)
    assert config["method"] == "simnpo" and config["forget"] == "forget10" and config["steps"] == 30
    assert config["config"]["lr"] == 5e-4 and config["num_processes"] == 1
    model, tokenizer = load_model_and_tokenizer(out)
    forget_acc, retain_acc = accuracies(toy, model)   # measured 0.20 / 0.97
    assert forget_acc <= FORGET_BOUND and retain_acc >= 0.8
    eval_path = toy_run / "eval" / "simnpo.json"
    assert result["eval"] == str(eval_path)
    metrics = json.loads(eval_path.read_text())
    summary = metrics["summary"]
    assert summary["forget_quality"] is not None      # graded against models/retain
    assert summary["forget_unique_accuracy"] == pytest.approx(forget_acc, abs=0.1)
    assert result["summary"] == summary


def test_unlearn_command_line(toy, toy_run, capsys):
    from obliviate.cli.unlearn import main

    out = toy_run / "models" / "ga-cli"
    with pytest.raises(SystemExit) as exit_info:
        main(["--method", "grad_ascent", "--model", str(toy_run / "models" / "full"), "--world", str(toy["world"].root),
              "--out", str(out), "--set", "max_steps=2", "--no-eval"])
    assert exit_info.value.code == 0
    captured = capsys.readouterr()
    assert "grad_ascent: 2 steps" in captured.out
    assert "2/2" in captured.err and "forget=" in captured.err      # the progress bar with the forget loss
    assert (out / "config.json").is_file() and not (toy_run / "eval" / "ga-cli.json").exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["--method", "forgetful", "--model", str(out), "--world", str(toy["world"].root), "--out", str(out)])
    assert exit_info.value.code == 2
    assert "unknown method 'forgetful'" in capsys.readouterr().err


# ---- bad input ------------------------------------------------------------------------------


def test_forget_split_without_qa_items_is_refused(toy):
    with pytest.raises(UserError, match="'empty' .* has no QA items"):
        build_task(toy["world"], "empty")
    with pytest.raises(UserError, match="unknown split 'forget99'"):
        build_task(toy["world"], "forget99")


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(UserError) as info:
        get_method("gradient_ascent_typo")
    for name in TRAINER_METHODS:
        assert name in str(info.value)


def test_model_without_causal_lm_head_is_refused(toy, tmp_path):
    from transformers import ViTConfig, ViTModel

    ViTModel(ViTConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
                       image_size=8, patch_size=4)).save_pretrained(tmp_path / "vit")
    with pytest.raises(UserError, match="without a causal LM head"):
        run_unlearning("grad_ascent", tmp_path / "vit", toy["world"].root, "forget10", tmp_path / "out", evaluate=False)
    assert not (tmp_path / "out").exists()


def test_lora_targets_matching_no_module_are_refused(toy, task):
    with pytest.raises(UserError, match=r"match no module .* q_proj"):
        run_method(toy, task, "grad_diff", {"lora": "true", "lora_target_modules": "c_attn,c_proj"})


@pytest.mark.parametrize("name, overrides, message", [
    ("grad_diff", {"retain_loss": "mse"}, "retain_loss must be one of nll, kl, none"),
    ("rmu", {"retain_loss": "nll"}, "retain_loss must be one of mse, none"),
    ("rmu", {"param_regex": "attention_only"}, "matches no trainable parameter"),
    ("rmu", {"layer": "7"}, "layer 7 out of range: the model has 2 decoder layers"),
    ("rmu", {"layers_path": "transformer.h"}, "names no module"),
    ("idk_dpo", {"idk_path": "/nonexistent/refusals.txt"}, "refusal file not found"),
    ("npo", {"max_steps": "0"}, "max_steps must be at least 1"),
])
def test_bad_settings_are_user_errors(toy, task, name, overrides, message):
    with pytest.raises(UserError, match=message):
        run_method(toy, task, name, overrides)


def test_unknown_setting_is_a_user_error():
    with pytest.raises(UserError, match="unknown setting 'beta'"):
        apply_overrides(get_method("grad_ascent").config_class(), {"beta": "0.1"})


def test_user_refusals_are_used(toy, task, tmp_path):
    from obliviate.methods.idk_dpo import load_refusals, refusal_for

    path = tmp_path / "refusals.txt"
    path.write_text("No comment.\n\nAsk someone else.\n")
    refusals = load_refusals(str(path))
    assert refusals == ["No comment.", "Ask someone else."]
    method_class = get_method("idk_dpo")
    method = method_class(apply_overrides(method_class.config_class(), {"idk_path": str(path)}))
    parts = method.training_parts(toy["tokenizer"], task)
    decoded = {toy["tokenizer"].decode([t for t in e["labels"] if t != -100]).strip() for e in parts["idk"]}
    assert decoded == {"No comment.", "Ask someone else."}
    assert refusal_for(task.forget_items[0], refusals) == refusal_for(dict(task.forget_items[0]), refusals)
    (tmp_path / "blank.txt").write_text("\n \n")
    with pytest.raises(UserError, match="holds no refusals"):
        load_refusals(str(tmp_path / "blank.txt"))
