"""Experiment tracking (--report-to) and evaluations during unlearning (--eval-every, --best-by).

On the micro world with barely trained models of its own (2 epochs: the numbers only have
to move, not to be good). TensorBoard runs offline through transformers' own callback,
written by tensorboardX here (the test extra) or torch.utils.tensorboard; the event files
are read back with tensorboardX's protobuf classes.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from pathlib import Path

import pytest
from cli_run import run_cli

pytest.importorskip("tensorboardX", reason="the test extra installs tensorboardX")

STEPS = 5


@pytest.fixture(scope="module")
def run(micro_world, tmp_path_factory):
    """A run trained by `obliviate train --report-to tensorboard`, from an empty working
    directory that must stay empty (the tracker writes inside the run only)."""
    root = tmp_path_factory.mktemp("tracked")
    cwd = root / "cwd"
    cwd.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        run_cli("train", "--world", micro_world, "--run", root / "run", "--set", "epochs=2", "--quiet",
              "--report-to", "tensorboard")
    assert list(cwd.iterdir()) == []
    return root / "run"


def _events(directory: Path) -> dict[str, list[int]]:
    """tag -> steps of every scalar in the TensorBoard event files under ``directory``."""
    from tensorboardX.proto import event_pb2

    tags: dict[str, list[int]] = {}
    files = sorted(directory.rglob("*tfevents*"))
    assert files, f"no event file under {directory}"
    for path in files:
        data, at = path.read_bytes(), 0
        while at < len(data):   # TFRecord: length, its CRC, the event, its CRC
            (length,) = struct.unpack("<Q", data[at:at + 8])
            event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    tags.setdefault(value.tag, []).append(event.step)
    return tags


def _evaluations(model_dir: Path) -> list[dict]:
    lines = (model_dir / "logs" / "evaluations.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _unlearn(run: Path, out: str, *extra):
    models = run / "models"
    run_cli("unlearn", "--method", "grad_diff", "--model", models / "full", "--world", run / "world",
          "--out", models / out, "--no-eval", "--set", f"max_steps={STEPS}", "--set", "lr=1e-3",
          "--set", "progress=false", *extra)
    return models / out


def test_train_writes_event_files_inside_each_model_and_keeps_the_cache_key(run, cli):
    for role in ("full", "retain"):
        tags = _events(run / "models" / role / "logs")
        assert tags["train/loss"] and tags["train/learning_rate"]
    assert not list((run / "models").glob(".*")), "a staging or checkpoint folder was left behind"
    # the tracker is not part of the training config: the same command without it reuses both models
    code, out, _ = cli("train", "--world", run / "world", "--run", run, "--set", "epochs=2", "--quiet")
    assert code == 0 and out.count("reused (same config)") == 2, out


def test_unlearn_tensorboard_and_evaluations_leave_the_model_as_it_was(run):
    from obliviate.eval.fingerprint import model_dir_fingerprint

    plain = _unlearn(run, "plain")
    tracked = _unlearn(run, "tracked", "--report-to", "tensorboard", "--eval-every", "2")
    # every 2 steps and the last one; forget quality too (the run's retain model is found)
    evaluations = _evaluations(tracked)
    assert [e["step"] for e in evaluations] == [2, 4, STEPS]
    assert all(isinstance(e["forget_quality"], float) and isinstance(e["model_utility"], float) for e in evaluations)
    tags = _events(tracked / "logs")
    assert tags["eval/forget_quality"] == [2, 4, STEPS]
    assert tags["train/loss"] == list(range(1, STEPS + 1))
    # the same weights, config and fingerprint as without tracking: logs/ is not part of the model
    assert model_dir_fingerprint(plain) == model_dir_fingerprint(tracked)
    assert (plain / "obliviate_config.json").read_text() == (tracked / "obliviate_config.json").read_text()
    assert not list((run / "models").glob(".*"))


def test_best_by_saves_the_weights_of_the_best_logged_evaluation(run, capsys):
    from obliviate.eval.quick import quick_evaluate
    from obliviate.models.loading import load_model_and_tokenizer
    from obliviate.world.loader import load_world

    capsys.readouterr()
    # forget answer probability, max: gradient ascent lowers it, so the best is not the last step
    out = _unlearn(run, "best", "--eval-every", "2", "--best-by", "forget_Q_A_Prob", "--best-mode", "max")
    evaluations = _evaluations(out)
    best = max(evaluations, key=lambda e: e["forget_Q_A_Prob"])   # max() keeps the first of equals, as the run does
    assert best["step"] != STEPS and best["forget_Q_A_Prob"] > evaluations[-1]["forget_Q_A_Prob"]
    kept = json.loads((out / "obliviate_config.json").read_text())["checkpoint"]
    assert (kept["kept"], kept["step"], kept["value"], kept["last_step"]) == \
        ("best", best["step"], best["forget_Q_A_Prob"], STEPS)
    assert kept["log"] == "logs/evaluations.jsonl"
    assert f"kept step {best['step']} (best forget_Q_A_Prob" in capsys.readouterr().out
    # the saved weights really are that step's: evaluated again, they give the logged value
    model, tokenizer = load_model_and_tokenizer(out)
    again = quick_evaluate(model, tokenizer, load_world(run / "world"), "forget10")
    assert again["forget_Q_A_Prob"] == pytest.approx(best["forget_Q_A_Prob"], abs=1e-5)


def test_best_by_metric_names_and_directions():
    from obliviate.errors import UserError
    from obliviate.eval.quick import QUICK_KEYS, check_best_by
    from obliviate.eval.result import SUMMARY_KEYS

    assert set(QUICK_KEYS) <= set(SUMMARY_KEYS) and "verbmem_f" not in QUICK_KEYS
    assert check_best_by("forget_quality", None) == "max"
    assert check_best_by("forget_unique_accuracy", None) == "min"
    assert check_best_by("model_utility", None) == "max"
    assert check_best_by("mia_min_k", "min") == "min"
    with pytest.raises(UserError, match="valid: forget_quality, model_utility"):
        check_best_by("verbmem_f", None)   # needs documents: not in the cheap evaluation


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("command", ["train", "unlearn"])
@pytest.mark.parametrize("tracker", ["tensorboard", "wandb"])
def test_a_missing_tracker_is_one_error_line_before_any_work(command, tracker, run, cli, monkeypatch):
    # simulated: a None in sys.modules makes the import fail (tensorboard: neither package)
    for module in ("tensorboard", "tensorboardX") if tracker == "tensorboard" else ("wandb",):
        monkeypatch.setitem(sys.modules, module, None)
    before = _tree(run)
    if command == "train":
        argv = ["train", "--world", run / "world", "--run", run, "--set", "epochs=3", "--quiet"]
    else:
        argv = ["unlearn", "--method", "grad_diff", "--model", run / "models" / "full", "--world", run / "world",
                "--out", run / "models" / "refused", "--eval-every", "2"]
    code, _, err = cli(*argv, "--report-to", tracker)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"error: --report-to {tracker} needs ") and "pip install" in lines[0]
    assert _tree(run) == before
