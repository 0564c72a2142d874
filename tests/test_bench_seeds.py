"""``obliviate bench --seeds``: intervals and significance on hand values, the aggregate of
real per-seed benchmarks on micro, and bad input."""

from __future__ import annotations

import json
import math

import pytest
from scipy import stats

from obliviate.errors import UserError
from obliviate.workflows.bench.config import BenchConfig
from obliviate.workflows.bench.seeds import (aggregate_boards, estimate, format_estimate, paired_p_value, parse_seeds,
                                             run_seeds)


def test_estimate_is_the_mean_with_a_student_t_interval():
    est = estimate([1.0, 2.0, 3.0, None, float("nan")])
    # mean 2, sample sd 1, sem 1/sqrt(3), t(0.975, df=2) = 4.3027
    assert est.mean == 2.0 and est.values == [1.0, 2.0, 3.0]
    assert est.half_width == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    assert estimate([5.0]).half_width is None and estimate([None]) is None


def test_paired_p_value_by_hand():
    # differences 1, 2, 3: mean 2, sd 1 -> t = 2 / (1 / sqrt 3) = 3.4641 with 2 degrees of freedom
    p = paired_p_value([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    assert p == pytest.approx(2 * stats.t.sf(2 * math.sqrt(3), 2), rel=1e-9)
    assert paired_p_value([1.0, 1.0], [1.0, 1.0]) == 1.0  # identical: no difference
    assert paired_p_value([0.9, 0.8], [0.4, 0.3]) == 0.0  # the same non-zero gap every seed
    assert paired_p_value([1.0], [0.5]) is None  # one seed: no test


def test_format_marks_significant_differences():
    entry = {"mean": 0.5, "ci95": 0.25}
    assert format_estimate(entry) == "0.500 ± 0.250"
    assert format_estimate(entry, 0.01) == "0.500 ± 0.250*"
    assert format_estimate(entry, 0.2) == "0.500 ± 0.250"
    assert format_estimate(None) == "-"


def _board(seed: int, fq: float, mu: float) -> dict:
    rows = [{"method": "retain", "split": "forget10", "kind": "gold standard", "forget_quality": 1.0, "model_utility": 0.4},
            {"method": "npo", "split": "forget10", "kind": "post-hoc", "forget_quality": fq, "model_utility": mu,
             "forget_quality_warning": None}]
    attacks = [{"method": "retain", "summary": {"relearn_gap_accuracy": 0.0}},
               {"method": "npo", "summary": {"relearn_gap_accuracy": 0.1 + 0.01 * seed}}]
    meta = {"preset": "micro", "splits": ["forget10"], "attack_split": "forget10", "date": "2026-12-02",
            "machine": "x", "seconds": 10.0}
    return {"meta": meta, "rows": rows, "attacks": attacks, "saga": None}


def test_aggregate_of_synthetic_boards():
    board = aggregate_boards({0: _board(0, 0.1, 0.40), 1: _board(1, 0.2, 0.38), 2: _board(2, 0.3, 0.39)}, "cmd")
    npo = next(r for r in board["rows"] if r["method"] == "npo")
    assert npo["seeds"] == [0, 1, 2]
    assert npo["metrics"]["forget_quality"]["mean"] == pytest.approx(0.2)
    assert npo["metrics"]["forget_quality"]["values"] == [0.1, 0.2, 0.3]
    # FQ 0.1/0.2/0.3 vs the retrained 1.0: differences -0.9/-0.8/-0.7, clearly significant
    assert npo["p_vs_retain"]["forget_quality"] == pytest.approx(stats.ttest_rel([0.1, 0.2, 0.3], [1.0] * 3).pvalue)
    assert npo["p_vs_retain"]["forget_quality"] < 0.05
    gap = next(r for r in board["attacks"] if r["method"] == "npo")
    assert gap["metrics"]["relearn_gap_accuracy"]["mean"] == pytest.approx(0.11)
    assert gap["p_vs_retain"]["relearn_gap_accuracy"] == pytest.approx(
        stats.ttest_rel([0.10, 0.11, 0.12], [0.0] * 3).pvalue)
    assert board["meta"]["seeds"] == [0, 1, 2] and board["meta"]["seconds"] == 30.0


@pytest.mark.parametrize("text, fragment", [("", "names no seed"), (" , ", "names no seed"), ("0,a", "'a' is not an integer"),
                                            ("1,1", "twice")])
def test_parse_seeds_rejects_mistakes(text, fragment):
    with pytest.raises(UserError, match=fragment):
        parse_seeds(text)


@pytest.mark.parametrize("args, fragment", [(["--seeds", ""], "names no seed"), (["--seeds", "0,x"], "not an integer"),
                                            (["--seeds", "0,1", "--seed", "3"], "not both")])
def test_bench_seeds_bad_input_is_exit_2(cli, tmp_path, args, fragment):
    code, _, err = cli("bench", "--preset", "micro", "--run", tmp_path / "run", *args)
    assert code == 2 and err.count("error:") == 1 and fragment in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_two_seeds_on_micro(tmp_path):
    # each seed makes its own world and trains its own models; 4 epochs instead of 25 keep this
    # about the aggregation of real per-seed runs (the figures' sizes belong to the bench)
    root = tmp_path / "bench"
    config = BenchConfig(preset="micro", splits=("forget10",), methods=("grad_diff",), sinks=False, attacks=(), whp=False,
                         train_overrides={"epochs": "4"}, method_overrides={"grad_diff": {"max_steps": "10"}})
    board = run_seeds(root, config, (0, 1), command="test")
    per_seed = {s: json.loads((root / f"seed{s}" / "leaderboard.json").read_text()) for s in (0, 1)}
    assert [per_seed[s]["meta"]["seed"] for s in (0, 1)] == [0, 1]
    worlds = [json.loads((root / f"seed{s}" / "world" / "world.json").read_text()) for s in (0, 1)]
    assert [w["seed"] for w in worlds] == [0, 1]
    full = next(r for r in board["rows"] if r["method"] == "full")
    values = [next(r for r in per_seed[s]["rows"] if r["method"] == "full")["forget_quality"] for s in (0, 1)]
    assert full["metrics"]["forget_quality"]["values"] == pytest.approx(values)
    assert full["metrics"]["forget_quality"]["mean"] == pytest.approx(sum(values) / 2)
    # the retrained model against itself is 1.0 on every seed: no interval width
    retain = next(r for r in board["rows"] if r["method"] == "retain")
    assert retain["metrics"]["forget_quality"] == {"mean": 1.0, "ci95": 0.0, "values": [1.0, 1.0]}
    text = (root / "leaderboard.md").read_text()
    assert "seeds 0, 1" in text and "| grad_diff |" in text and " ± " in text
