"""The markdown report and its plots, from hand-made evaluation JSONs."""

import pytest

from obliviate.cli.evaluate import report_command
from obliviate.errors import UserError
from obliviate.eval.evaluator import SUMMARY_KEYS
from obliviate.eval.report import render_report
from obliviate.io import atomic_write_json

PNG = b"\x89PNG\r\n\x1a\n"


def evaluation(forget_quality, trs, ref_trs=None, holdout=True, accuracy=0.5):
    summary = {key: None for key in SUMMARY_KEYS}
    summary.update(forget_quality=forget_quality, forget_truth_ratio=0.61234, forget_unique_accuracy=accuracy,
                   retain_unique_accuracy=1.0, mia_loss=0.75 if holdout else None)
    mia = {"forget": {"a": {"loss": -0.1, "zlib": -0.01, "min_k": -0.5, "min_k_plus_plus": -1.0},
                      "b": {"loss": -0.3, "zlib": -0.03, "min_k": -0.9, "min_k_plus_plus": -0.2}},
           "holdout": {"h": {"loss": -2.0, "zlib": -0.2, "min_k": -3.0, "min_k_plus_plus": -1.5},
                       "i": {"loss": -0.2, "zlib": -0.02, "min_k": -0.7, "min_k_plus_plus": 0.3}} if holdout else {}}
    return {
        "summary": summary,
        "per_item": {"forget_truth_ratio": dict(zip("ab", trs)), "mia": mia,
                     "reference": None if ref_trs is None else {"forget_truth_ratio": dict(zip("ab", ref_trs))}},
        "config": {"forget": "forget10", "world_fingerprint": "x"},
    }


def test_report_has_table_and_plots(tmp_path):
    atomic_write_json(tmp_path / "eval" / "full.json", evaluation(0.001, [0.01, 0.02], ref_trs=[0.9, 1.1]))
    atomic_write_json(tmp_path / "eval" / "npo.json", evaluation(None, [0.5, 2.0], holdout=False, accuracy=0.0))
    atomic_write_json(tmp_path / "eval" / "notes.json", {"not": "an evaluation"})  # ignored
    path = render_report(tmp_path)
    assert path == tmp_path / "report.md"
    text = path.read_text()
    assert "| metric | full | npo |" in text  # sorted file names, stray JSON left out
    assert "| forget_quality | 0.001 | - |" in text
    assert "| forget_truth_ratio | 0.6123 | 0.6123 |" in text
    assert "| forget_unique_accuracy | 0.5 | 0 |" in text
    for name in ("accuracy.png", "truth_ratio_full.png", "truth_ratio_npo.png", "mia_roc_full.png"):
        assert f"plots/{name}" in text
        assert (tmp_path / "plots" / name).read_bytes()[:8] == PNG
    assert not (tmp_path / "plots" / "mia_roc_npo.png").exists()  # no holdout: no ROC


def test_report_without_holdout_says_so(tmp_path):
    atomic_write_json(tmp_path / "eval" / "only.json", evaluation(0.5, [0.5, 2.0], holdout=False))
    text = render_report(tmp_path).read_text()
    assert "No holdout items" in text


def test_report_errors(tmp_path, capsys):
    with pytest.raises(UserError, match="does not exist"):
        render_report(tmp_path / "missing")
    with pytest.raises(UserError, match="no evaluation JSONs"):
        render_report(tmp_path)
    atomic_write_json(tmp_path / "eval" / "full.json", evaluation(0.2, [0.3, 0.4]))
    assert report_command(run=tmp_path) == tmp_path / "report.md"
    assert str(tmp_path / "report.md") in capsys.readouterr().out
