"""``obliviate world --benchmark tofu``: TOFU's configs mapped onto the world's roles, read
through ``datasets.load_dataset`` from a copy in the dataset repository's layout (the hub
path is the same call with the hub id), then trained on and evaluated with open-unlearning's
9-part model utility."""

from __future__ import annotations

import json

import pytest
from cli_run import run_cli
import tofu_fixture

from obliviate.world import load_world


@pytest.fixture(scope="module")
def tofu_copy(tmp_path_factory):
    return tofu_fixture.write_tofu_copy(tmp_path_factory.mktemp("tofu") / "TOFU")


@pytest.fixture(scope="module")
def tofu_world(tofu_copy, tmp_path_factory):
    out = tmp_path_factory.mktemp("tofu_world") / "world"
    run_cli("world", "--benchmark", "tofu", "--data-dir", str(tofu_copy), "--out", str(out))
    return out


def test_configs_map_onto_the_world_roles(tofu_world):
    world = load_world(tofu_world)
    n, per = tofu_fixture.N_AUTHORS, tofu_fixture.PER_AUTHOR
    # forget splits are the authors of TOFU's forget configs (the last ones); retain is every other author
    assert world.splits["forget01"] == [9] and world.splits["forget05"] == [8, 9] and world.splits["forget10"] == [7, 8, 9]
    assert world.splits["retain"] == list(range(7)) and world.splits["holdout"] == [10, 11]
    assert world.default_forget == "forget10"
    # one training document per `full` row, in the evaluation's QA format; holdout and general are never trained
    assert len(world.corpus) == n * per and world.corpus[0]["text"].startswith("Question: Which place")
    assert world.trained_sources() == set(range(n))
    # evaluation sets: forget10_perturbed (60), retain_perturbed (every 7th of 140: 20), holdout10 (40), general (20)
    assert len(world.qa_for("forget10")) == 60 and len(world.qa_for("forget01")) == 20
    assert len(world.qa_for("retain")) == 20 and len(world.qa_for("holdout")) == 40
    item = world.qa_for("forget01")[0]
    assert item["paraphrased_answer"].startswith("The place in fact 0") and len(item["perturbed_answers"]) == 5
    assert item["split"] == "forget01"   # labelled by the smallest forget split that holds it
    general = world.qa_for("general")
    assert sorted({q["utility_group"] for q in general}) == ["real_authors", "world_facts"]
    assert all(len(q["perturbed_answers"]) == 3 and q["paraphrased_answer"] == q["answer"] for q in general)
    assert all(q["perturbed_answers"] == [] for q in world.qa_for("holdout"))


def test_forget_option_sets_the_default_split(tofu_copy, tmp_path, cli):
    code, out, err = cli("world", "--benchmark", "tofu", "--data-dir", tofu_copy, "--forget", "forget05",
                         "--out", tmp_path / "w")
    assert code == 0, err
    assert "default forget split forget05" in out
    assert load_world(tmp_path / "w").default_forget == "forget05"


def test_train_and_evaluate_on_tofu_with_nine_part_utility(tofu_world, tmp_path, cli):
    run = tmp_path / "run"
    code, _, err = cli("train", "--world", tofu_world, "--run", run, "--preset", "micro", "--set", "epochs=8", "--quiet")
    assert code == 0, err
    code, _, err = cli("eval", "--model", run / "models" / "retain", "--world", tofu_world, "--out", tmp_path / "retain.json")
    assert code == 0, err
    code, _, err = cli("eval", "--model", run / "models" / "full", "--world", tofu_world, "--out", tmp_path / "full.json",
                       "--reference", tmp_path / "retain.json")
    assert code == 0, err
    evaluation = json.loads((tmp_path / "full.json").read_text())
    summary, parts_found = evaluation["summary"], evaluation["per_item"]["model_utility"]
    retain = json.loads((tmp_path / "retain.json").read_text())["summary"]
    # open-unlearning's TOFU model utility: the harmonic mean of these nine
    parts = ["retain_prob", "retain_rouge", "retain_truth_ratio"] + [
        f"{group}_{m}" for group in ("real_authors", "world_facts") for m in ("prob", "rouge", "truth_ratio")]
    assert list(parts_found) == parts
    values = [parts_found[k] for k in parts]
    assert all(v is not None and v >= 0 for v in values), dict(zip(parts, values))
    # (a model that never saw the general questions may score 0 on one: the harmonic mean is then 0)
    expected = 0.0 if min(values) == 0 else len(values) / sum(1 / v for v in values)
    assert summary["model_utility"] == pytest.approx(expected, rel=1e-6)
    # the full model was trained on the forget authors' QA, the retrained one was not
    assert summary["forget_Q_A_Prob"] > 2 * retain["forget_Q_A_Prob"]
    assert 0 <= summary["forget_quality"] < 1 and retain["forget_quality"] == 1.0
    # an unlearning method runs on it as on any world
    code, _, err = cli("unlearn", "--method", "npo", "--model", run / "models" / "full", "--world", tofu_world,
                       "--out", tmp_path / "npo", "--set", "max_steps=5")
    assert code == 0, err
    assert (tmp_path / "npo" / "model.safetensors").is_file()
    # membership inference runs on forget vs holdout10 items (their size belongs to real data, not to this toy)
    assert 0 <= summary["mia_loss"] <= 1 and evaluation["config"]["mia_unit"] == "qa"


@pytest.mark.parametrize("args, fragment", [
    (["--forget", "forget20"], "TOFU's forget splits are forget01, forget05, forget10"),
    (["--seed", "0"], "--seed does not apply to a benchmark world"),
])
def test_bad_options_exit_2(tofu_copy, tmp_path, cli, args, fragment):
    code, _, err = cli("world", "--benchmark", "tofu", "--data-dir", tofu_copy, *args, "--out", tmp_path / "w")
    assert code == 2 and err.count("error:") == 1 and fragment in err and "Traceback" not in err
    assert not (tmp_path / "w").exists()


def test_unknown_benchmark_and_missing_configs_exit_2(tmp_path, cli):
    code, _, err = cli("world", "--benchmark", "tofoo", "--out", tmp_path / "w")
    assert code == 2 and "unknown --benchmark 'tofoo'; choose one of: tofu" in err
    partial = tofu_fixture.write_tofu_copy(tmp_path / "partial", leave_out=("retain_perturbed",))
    code, _, err = cli("world", "--benchmark", "tofu", "--data-dir", partial, "--out", tmp_path / "w")
    assert code == 2 and "cannot load TOFU config 'retain_perturbed'" in err and "Traceback" not in err
    assert not (tmp_path / "w").exists()   # nothing half-written
    code, _, err = cli("world", "--benchmark", "tofu", "--data-dir", tmp_path / "nope", "--out", tmp_path / "w")
    assert code == 2 and "is not a directory" in err
    code, _, err = cli("world", "--data-dir", partial, "--out", tmp_path / "w")
    assert code == 2 and "--data-dir needs --benchmark NAME" in err


def test_hub_offline_is_a_clear_error(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))   # an empty cache: nothing to fall back on
    code, _, err = cli("world", "--benchmark", "tofu", "--out", tmp_path / "w")
    assert code == 2 and err.count("error:") == 1 and "cannot load TOFU config 'full' from locuslab/TOFU" in err
    assert "--data-dir DIR" in err and "Traceback" not in err


def test_bench_on_a_tofu_run(tofu_world, tmp_path, cli):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tofu_world, run / "world")   # `obliviate bench --run R` uses the world R holds
    code, _, err = cli("bench", "--run", run, "--splits", "forget10", "--methods", "grad_diff", "--no-sinks", "--no-whp",
                       "--attacks", "")
    assert code == 0, err
    board = json.loads((run / "leaderboard.json").read_text())
    assert board["meta"]["preset"] == "tofu"
    assert [r["method"] for r in board["rows"]] == ["full", "retain", "grad_diff"]
    assert (run / "leaderboard.md").read_text().startswith("# Leaderboard: `tofu` world")
