"""``obliviate eval --lm-eval``: a local multiple-choice task run offline through lm-eval-harness.

The task (YAML + jsonl written here) is scored by lm-eval on a tiny random Llama; its
accuracies must equal what the scoring engine's log-likelihoods of each choice give by hand.
"""

from __future__ import annotations

import json
import os
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from obliviate.eval.lm_eval_bridge import expand_tasks, headline_metrics, parse_tasks
from obliviate.eval.scoring import score_continuations
from obliviate.models.loading import load_model_and_tokenizer
from obliviate.tokenizer import train_tokenizer

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TASK = "obliviate_toy_mc"
WORDS = ["red", "blue", "green", "Paris", "Lima", "Oslo", "river", "mountain", "seven", "twelve", "a cat",
         "the old dog", "bread", "wine", "north", "south"]


def _documents(count: int = 24, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    docs = []
    for index in range(count):
        n_choices = 2 + index % 3
        choices = [str(w) for w in rng.choice(WORDS, size=n_choices, replace=False)]
        docs.append({"question": f"Which word comes with item {index}?", "choices": choices,
                     "label": int(rng.integers(n_choices))})
    return docs


def _write_task(directory, docs) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "data.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    (directory / f"{TASK}.yaml").write_text(
        f"task: {TASK}\n"
        "dataset_path: json\n"
        "dataset_kwargs:\n"
        f"  data_files:\n    test: {data}\n"
        f"  cache_dir: {directory / 'hf-cache'}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "Question: {{question}}\\nAnswer:"\n'
        'doc_to_choice: "{{choices}}"\n'
        "doc_to_target: label\n"
        "metric_list:\n"
        "  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
        "  - metric: acc_norm\n    aggregation: mean\n    higher_is_better: true\n"
    )


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny random Llama with peaked predictions, saved with a BPE tokenizer."""
    torch.set_num_threads(1)
    texts = [f"Question: Which word comes with item {i}?\nAnswer: {w}" for i in range(30) for w in WORDS]
    tokenizer = train_tokenizer(texts, vocab_size=300)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         initializer_range=0.3, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("lm_eval_model") / "model"
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_local_task_accuracy_matches_hand_computed(tiny_model, micro_world, cli, tmp_path):
    pytest.importorskip("lm_eval")
    docs = _documents()
    _write_task(tmp_path / "tasks", docs)
    out = tmp_path / "eval.json"
    code, stdout, stderr = cli("eval", "--model", tiny_model, "--world", micro_world, "--out", out,
                               "--lm-eval", TASK, "--lm-eval-include", tmp_path / "tasks", "--batch-size", "8")
    assert code == 0, stderr
    result = json.loads(out.read_text())
    task_results = result["lm_eval"]["results"][TASK]
    assert result["summary"]["forget_truth_ratio"] is not None   # the world evaluation ran too

    # by hand: lm-eval scores " " + choice after the question; acc = argmax of the summed
    # log-likelihood, acc_norm = argmax of the log-likelihood per character of the choice
    model, tokenizer = load_model_and_tokenizer(tiny_model)
    pairs = [(f"Question: {d['question']}\nAnswer:", " " + c) for d in docs for c in d["choices"]]
    loglik = iter([-s.nll_sum for s in score_continuations(model, tokenizer, pairs)])
    acc, acc_norm = [], []
    for d in docs:
        lls = np.array([next(loglik) for _ in d["choices"]])
        lengths = np.array([len(c) for c in d["choices"]], dtype=float)
        acc.append(float(np.argmax(lls) == d["label"]))
        acc_norm.append(float(np.argmax(lls / lengths) == d["label"]))
    assert 0.0 < np.mean(acc) < 1.0 and np.mean(acc) != np.mean(acc_norm)   # a test that can fail
    assert task_results["acc,none"] == pytest.approx(np.mean(acc))
    assert task_results["acc_norm,none"] == pytest.approx(np.mean(acc_norm))
    assert task_results["acc_stderr,none"] == pytest.approx(np.std(acc, ddof=1) / np.sqrt(len(acc)))
    assert result["lm_eval"]["n_samples"][TASK]["effective"] == len(docs)
    assert result["lm_eval"]["config"]["lm_eval_version"]
    assert f"lm_eval {TASK} acc_norm" in stdout and f"lm_eval {TASK} acc " in stdout


def test_lm_eval_bad_input(tiny_model, micro_world, cli, tmp_path, monkeypatch):
    pytest.importorskip("lm_eval")
    _write_task(tmp_path / "tasks", _documents(4))
    base = ("eval", "--model", tiny_model, "--world", micro_world, "--out", tmp_path / "x.json")

    code, _, stderr = cli(*base, "--lm-eval", "no_such_task_xyz", "--lm-eval-include", tmp_path / "tasks")
    assert code == 2 and "unknown lm-eval task(s) 'no_such_task_xyz'" in stderr
    code, _, stderr = cli(*base, "--lm-eval", TASK, "--lm-eval-include", tmp_path / "nowhere")
    assert code == 2 and "is not a directory" in stderr
    (tmp_path / "tasks" / "data.jsonl").unlink()   # the task's data file is gone: fails before any model runs
    code, _, stderr = cli(*base, "--lm-eval", TASK, "--lm-eval-include", tmp_path / "tasks")
    assert code == 2 and f"could not load the data of task(s) {TASK}" in stderr
    code, _, stderr = cli(*base, "--lm-eval", " , ")
    assert code == 2 and "at least one task" in stderr
    code, _, stderr = cli(*base, "--lm-eval-include", tmp_path / "tasks")
    assert code == 2 and "need --lm-eval" in stderr
    monkeypatch.setitem(sys.modules, "lm_eval", None)   # as if not installed
    code, _, stderr = cli(*base, "--lm-eval", TASK)
    assert code == 2 and "pip install 'obliviate[lm-eval]'" in stderr
    assert not (tmp_path / "x.json").exists()


def test_task_patterns_expand_in_order():
    pytest.importorskip("lm_eval")
    manager = SimpleNamespace(all_tasks=["arc_easy", "arc_challenge", "piqa", "mmlu_a", "mmlu_b"])
    assert parse_tasks(" piqa,mmlu_*, piqa ") == ("piqa", "mmlu_*")
    assert expand_tasks(["piqa", "mmlu_*", "mmlu_a"], manager) == ["piqa", "mmlu_a", "mmlu_b"]
    rows = headline_metrics({"alias": "x", "acc,none": 0.5, "acc_stderr,none": 0.1, "acc_norm,none": 0.25,
                             "acc_norm_stderr,none": 0.2, "sample_len": 10})
    assert rows == [("acc_norm", 0.25, 0.2), ("acc", 0.5, 0.1)]
