"""The command line: --help everywhere, and user mistakes exit 2 with one clear line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

COMMANDS = ["world", "train", "eval", "unlearn", "report", "demo", "bench", "attack", "attribute", "whp", "icul",
            "methods", "purge", "whp anchors", "whp generate"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(cli, command):
    code, out, _ = cli(*command.split(), "--help")
    assert code == 0
    assert "Usage" in out and "--help" in out


def _assert_user_error(result, fragment: str):
    code, _, err = result
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert fragment in lines[0], lines[0]


def test_unknown_preset(cli, tmp_path):
    _assert_user_error(cli("world", "--preset", "huge", "--out", tmp_path / "w"), "unknown preset 'huge'")


def test_nonexistent_model_path(cli, micro_world, tmp_path):
    _assert_user_error(cli("unlearn", "--method", "npo", "--model", tmp_path / "nope", "--world", micro_world,
                           "--out", tmp_path / "o"), "model path does not exist")
    _assert_user_error(cli("train", "--world", micro_world, "--run", tmp_path / "r", "--model", tmp_path / "nope"),
                       "model path does not exist")


def test_unknown_method_lists_valid_ones(cli, micro_world, tmp_path):
    _assert_user_error(cli("unlearn", "--method", "nope", "--model", tmp_path, "--world", micro_world,
                           "--out", tmp_path / "o"), "valid methods: ")


def test_run_directory_that_is_a_file(cli, micro_world, tmp_path):
    run = tmp_path / "run"
    run.write_text("I am a file")
    _assert_user_error(cli("train", "--world", micro_world, "--run", run), "not a directory")


def test_missing_world(cli, tmp_path):
    _assert_user_error(cli("train", "--world", tmp_path / "nowhere", "--run", tmp_path / "r"),
                       "world directory does not exist")


def test_corrupt_and_truncated_jsonl(cli, micro_world, tmp_path):
    world = tmp_path / "world"
    shutil.copytree(micro_world, world)
    qa = world / "qa.jsonl"
    text = qa.read_text()
    qa.write_text(text[: len(text) // 2])  # cut in the middle of a line
    _assert_user_error(cli("train", "--world", world, "--run", tmp_path / "r"), "corrupt or truncated JSON line")
    qa.write_text(text)
    (world / "corpus.jsonl").write_text('{"doc_id": "x", "text": "no source"}\n')
    _assert_user_error(cli("train", "--world", world, "--run", tmp_path / "r"), "missing field(s) source_id")


def test_unknown_forget_split(cli, micro_world, tmp_path):
    _assert_user_error(cli("train", "--world", micro_world, "--run", tmp_path / "r", "--forget", "forget99"),
                       "unknown split 'forget99'")


def test_bad_training_override(cli, micro_world, tmp_path):
    _assert_user_error(cli("train", "--world", micro_world, "--run", tmp_path / "r", "--set", "epochz=3"),
                       "unknown setting 'epochz'")


def test_interrupted_training_resumes_from_its_checkpoint(micro_world, tmp_path):
    from obliviate.workflows.run_dir import RunDir
    from obliviate.workflows.train import train_run

    overrides = {"epochs": "2", "save_steps": "8"}
    with pytest.raises(KeyboardInterrupt):
        train_run(micro_world, tmp_path, which=("full",), overrides=overrides, progress=False, _stop_after_steps=8)
    run = RunDir.open(tmp_path)
    assert not run.full_model.exists()  # nothing half-written that a later run would trust
    checkpoints = list(run.models_dir.glob(".ckpt-full-*/checkpoint-8"))
    assert len(checkpoints) == 1
    result = train_run(micro_world, tmp_path, which=("full",), overrides=overrides, progress=False)["full"]
    saved = json.loads((result.path / "obliviate_config.json").read_text())
    assert saved["resumed"] is True and saved["steps"] == result.steps > 8
    assert not list(run.models_dir.glob(".ckpt-*"))  # checkpoints cleaned up after success


def test_console_script_exit_code_in_a_real_process(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "obliviate.cli", "world", "--preset", "nope", "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: unknown preset 'nope'; valid presets: micro, tiny, small"


def test_usage_mistakes_are_one_error_line_too(cli, tmp_path):
    _assert_user_error(cli("train", "--run", tmp_path / "r"), "Missing option '--world'")
    _assert_user_error(cli("world", "--out", tmp_path / "w", "--seed", "one"), "Invalid value for '--seed'")
    _assert_user_error(cli("unlearnn"), "No such command 'unlearnn'")
    code, out, _ = cli()   # no command: the help
    assert "Usage" in out and "unlearn" in out


def test_interruption_exits_130_and_says_the_run_resumes(cli, micro_world, tmp_path, monkeypatch):
    import obliviate.workflows.train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(obliviate.workflows.train, "train_run", interrupted)
    code, _, err = cli("train", "--world", micro_world, "--run", tmp_path / "r")
    assert code == 130 and err.strip().startswith("interrupted:") and "Traceback" not in err


def test_stand_alone_unlearn_entry_point_in_a_real_process(tmp_path):
    """``python -m obliviate.cli unlearn`` (what torchrun launches) is the CLI's unlearn command."""
    proc = subprocess.run([sys.executable, "-m", "obliviate.cli", "unlearn", "--method", "forgetful",
                           "--model", str(tmp_path), "--world", str(tmp_path), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().startswith("error: unknown method 'forgetful'; valid methods: ")
    assert len(proc.stderr.strip().splitlines()) == 1
