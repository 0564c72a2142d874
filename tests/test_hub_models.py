"""``--model org/name``: hub ids resolve through the hub cache (offline here: HF_HUB_OFFLINE=1,
conftest), local paths stay local, and every failure is one line with exit status 2."""

from __future__ import annotations

import json
import shutil

import huggingface_hub.constants
import pytest

from obliviate.models.hub import is_hub_id

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _cache_snapshot(cache, repo_id: str, files_from=None, extra: dict | None = None):
    """A hub cache entry as huggingface_hub writes it: models--org--name/{refs/main, snapshots/<commit>/}."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    if files_from is not None:
        shutil.copytree(files_from, snapshot)
    else:
        snapshot.mkdir(parents=True)
    for name, text in (extra or {}).items():
        (snapshot / name).write_text(text)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


@pytest.mark.parametrize("text, expected", [("locuslab/tofu_ft_llama2-7b", True), ("org/name", True),
                                            ("runs/demo/models/full", False), ("name", False), ("/abs/x", False),
                                            ("./org", False)])
def test_hub_id_shape(text, expected):
    assert is_hub_id(text) is expected


def test_cached_hub_model_evaluates_offline(micro_run, tmp_path, cli, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    _cache_snapshot(tmp_path / "hub", "testorg/micro-full", files_from=micro_run.full_model)
    code, _, err = cli("eval", "--model", "testorg/micro-full", "--world", micro_run.world_dir, "--out", tmp_path / "e.json")
    assert code == 0, err
    summary = json.loads((tmp_path / "e.json").read_text())["summary"]
    assert summary["retain_unique_accuracy"] >= 0.9   # the micro full model, loaded from the hub cache


def test_hub_errors_are_one_line(micro_run, tmp_path, cli, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    world = micro_run.world_dir
    code, _, err = cli("eval", "--model", "nobody/missing-model", "--world", world, "--out", tmp_path / "e.json")
    assert code == 2 and err.count("error:") == 1 and "Traceback" not in err
    assert "model 'nobody/missing-model': HF_HUB_OFFLINE is set and the hub cache holds no copy of it" in err
    # pickled weights only: refused, never loaded
    _cache_snapshot(tmp_path / "hub", "testorg/bin-only", extra={"config.json": "{}", "pytorch_model.bin": "x"})
    code, _, err = cli("unlearn", "--method", "npo", "--model", "testorg/bin-only", "--world", world,
                       "--out", tmp_path / "u")
    assert code == 2 and "has no safetensors weights" in err and not (tmp_path / "u").exists()
    # a path that is not a hub id and does not exist stays a plain path error
    code, _, err = cli("eval", "--model", tmp_path / "a" / "b" / "c", "--world", world, "--out", tmp_path / "e.json")
    assert code == 2 and "model path does not exist" in err
    assert not (tmp_path / "e.json").exists()
