"""``obliviate world --benchmark muse``: MUSE-News's configs mapped onto the world's roles,
read through ``datasets.load_dataset`` from a copy in the dataset repository's layout (the
hub path is the same call with the hub id), then trained on and evaluated with MUSE's
metrics (VerbMem, KnowMem, PrivLeak)."""

from __future__ import annotations

import json

import muse_fixture
import pytest
from cli_run import run_cli

from obliviate.eval.metrics import qa
from obliviate.world import load_world


@pytest.fixture(scope="module")
def muse_copy(tmp_path_factory):
    return muse_fixture.write_muse_copy(tmp_path_factory.mktemp("muse") / "MUSE-News")


@pytest.fixture(scope="module")
def muse_world(muse_copy, tmp_path_factory):
    out = tmp_path_factory.mktemp("muse_world") / "world"
    run_cli("world", "--benchmark", "muse", "--corpus", "news", "--data-dir", str(muse_copy), "--out", str(out))
    return out


def test_rouge_l_f1_by_hand():
    # LCS "born in kest": recall 3/6, precision 3/3, F1 = 2 * 0.5 * 1 / 1.5
    assert qa.rouge_l_f1("born in Kest", "Lorin Vask was born in Kest.") == pytest.approx(2 / 3)
    # LCS "cat sat": precision 2/3, recall 2/4, F1 = 2PR / (P + R) = 4/7
    assert qa.rouge_l_f1("the cat sat", "a cat sat down") == pytest.approx(4 / 7)
    assert qa.rouge_l_f1("", "Kest") == 0.0 and qa.rouge_l_f1("Kest", "Kest") == 1.0


def test_configs_map_onto_the_world_roles(muse_world):
    world = load_world(muse_world)
    n = muse_fixture.N_RAW
    # one source per raw row; forget, retain = retain1 + retain2 (trained), holdout (never trained)
    assert [len(world.splits[s]) for s in ("forget", "retain1", "retain2", "holdout")] == list(n.values())
    assert world.splits["retain"] == world.splits["retain1"] + world.splits["retain2"]
    assert world.trained_sources() == set(world.splits["forget"]) | set(world.splits["retain"])
    assert world.default_forget == "forget"
    # the raw text is the training corpus (short articles: one document each)
    assert len(world.corpus) == sum(n.values())
    assert world.docs_for(set(world.splits["forget"]))[0]["text"] == muse_fixture.article("forget", 0)
    # KnowMem QA: forget_qa / retain_qa, each after its split's ICL examples, no perturbations
    forget, retain = world.qa_for("forget"), world.qa_for("retain")
    assert len(forget) == n["forget"] and len(retain) == n["retain2"]
    assert all(q["perturbed_answers"] == [] and q["paraphrased_answer"] == q["answer"] for q in forget + retain)
    assert forget[0]["context"].startswith("Question: ") and forget[0]["context"].count("\nAnswer: ") == 2
    # each item is credited to the article that holds its answer
    assert [q["source_id"] for q in forget] == world.splits["forget"]
    assert {q["source_id"] for q in retain} <= set(world.splits["retain2"])
    # VerbMem prompts of the forget split
    verbmem = [p for p in world.prompts if p["type"] == "verbmem"]
    assert len(verbmem) == n["forget"] and all(p["split"] == "forget" for p in verbmem)
    assert world.manifest["unlearn_data"] == "docs"


def test_train_evaluate_and_unlearn_with_muse_metrics(muse_world, tmp_path, cli):
    run = tmp_path / "run"
    code, _, err = cli("train", "--world", muse_world, "--run", run, "--preset", "micro", "--set", "epochs=60",
                       "--set", "learning_rate=3e-3", "--quiet")
    assert code == 0, err
    retain_model = run / "models" / "retain-forget"
    code, _, err = cli("eval", "--model", retain_model, "--world", muse_world, "--out", tmp_path / "retain.json")
    assert code == 0, err
    code, _, err = cli("eval", "--model", run / "models" / "full", "--world", muse_world, "--out", tmp_path / "full.json",
                       "--reference", tmp_path / "retain.json")
    assert code == 0, err
    full = json.loads((tmp_path / "full.json").read_text())
    retain = json.loads((tmp_path / "retain.json").read_text())
    summary = full["summary"]
    # VerbMem: ROUGE-L F1 of the greedy continuation of each MUSE verbmem prompt against its gt
    rows = full["per_item"]["verbmem"]
    assert sorted(rows) == sorted(f"muse-verbmem-{k}" for k in range(muse_fixture.N_RAW["forget"]))
    world = load_world(muse_world)
    references = {p["id"]: p["reference"] for p in world.prompts}
    for item_id, row in rows.items():   # the fixture's gts are shorter than verbmem_max_new_tokens: uncut
        assert row["rouge"] == pytest.approx(qa.rouge_l_f1(row["generated"], references[item_id]))
    assert summary["verbmem_f"] == pytest.approx(sum(r["rouge"] for r in rows.values()) / len(rows))
    assert 0 <= summary["knowmem_f"] <= 1 and 0 <= summary["knowmem_r"] <= 1
    # no perturbed answers: no truth ratio, no forget quality, and nothing breaks for it
    assert summary["forget_truth_ratio"] is None and summary["forget_quality"] is None
    # PrivLeak: Min-K% AUC of forget vs holdout documents against the retain model's, MUSE's formula
    assert full["config"]["mia_unit"] == "documents"
    auc, ref = summary["mia_min_k"], retain["summary"]["mia_min_k"]
    assert summary["privleak"] == pytest.approx(((1 - auc) - (1 - ref)) / (1 - ref) * 100)
    # the full model was trained on the forget articles, the retrained one was not
    assert summary["forget_perplexity"] < retain["summary"]["forget_perplexity"]
    # an unlearning method runs on it, on the forget documents (MUSE unlearns its raw text)
    code, _, err = cli("unlearn", "--method", "grad_diff", "--model", run / "models" / "full", "--world", muse_world,
                       "--out", tmp_path / "gd", "--set", "max_steps=2")
    assert code == 0, err
    assert (tmp_path / "gd" / "model.safetensors").is_file()


@pytest.mark.parametrize("args, fragment", [
    (["--corpus", "poems"], "--corpus 'poems': MUSE's corpora are news, books"),
    (["--forget", "forget10"], "--forget does not apply to --benchmark muse: MUSE has one forget split, 'forget'"),
    (["--seed", "0"], "--seed does not apply to a benchmark world"),
])
def test_bad_options_exit_2(muse_copy, tmp_path, cli, args, fragment):
    code, _, err = cli("world", "--benchmark", "muse", "--data-dir", muse_copy, *args, "--out", tmp_path / "w")
    assert code == 2 and err.count("error:") == 1 and fragment in err and "Traceback" not in err, err
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("write, fragment", [
    ({"leave_out": ("verbmem",)}, "cannot load MUSE config 'verbmem'"),
    ({"drop_column": ("knowmem", "answer")}, "MUSE config 'knowmem' split 'forget_qa' has no column 'answer'"),
])
def test_incomplete_copy_exits_2(tmp_path, cli, write, fragment):
    partial = muse_fixture.write_muse_copy(tmp_path / "partial", **write)
    code, _, err = cli("world", "--benchmark", "muse", "--data-dir", partial, "--out", tmp_path / "w")
    assert code == 2 and err.count("error:") == 1 and fragment in err and "Traceback" not in err, err
    assert not (tmp_path / "w").exists()   # nothing half-written


def test_flags_outside_muse_exit_2(muse_copy, tmp_path, cli):
    code, _, err = cli("world", "--corpus", "news", "--out", tmp_path / "w")
    assert code == 2 and "--corpus needs --benchmark NAME" in err
    code, _, err = cli("world", "--benchmark", "tofu", "--corpus", "news", "--out", tmp_path / "w")
    assert code == 2 and "--corpus does not apply to --benchmark tofu" in err
    code, _, err = cli("world", "--benchmark", "muse", "--data-dir", tmp_path / "nope", "--out", tmp_path / "w")
    assert code == 2 and "is not a directory" in err
    assert not (tmp_path / "w").exists()


def test_hub_offline_is_a_clear_error(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))   # an empty cache: nothing to fall back on
    code, _, err = cli("world", "--benchmark", "muse", "--corpus", "books", "--out", tmp_path / "w")
    assert code == 2 and err.count("error:") == 1 and "cannot load MUSE config 'raw' from muse-bench/MUSE-Books" in err
    assert "--data-dir DIR" in err and "Traceback" not in err
    assert not (tmp_path / "w").exists()


def test_help_explains_muse(cli):
    code, out, _ = cli("world", "--help")
    assert code == 0 and "muse" in out and "--corpus" in out
