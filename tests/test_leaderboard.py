"""The leaderboard: rendering on hand-made rows, and a one-method bench on the micro run."""

from __future__ import annotations

import json

from obliviate.bench.leaderboard import BenchConfig, render_markdown, run_bench, scatter_plot

META = {"preset": "micro", "seed": 0, "splits": ["forget10"], "command": "obliviate bench", "attack_split": "forget10",
        "date": "2026-11-22", "machine": "test"}


def _rows():
    base = {"split": "forget10", "kind": "x", "forget_truth_ratio": 0.5, "mia_auc_mink": 0.6, "privleak": -3.0,
            "forget_unique_accuracy": 0.1, "forget_shared_accuracy": 1.0, "retain_unique_accuracy": 0.9}
    return [
        {**base, "method": "retain", "forget_quality": 1.0, "model_utility": 0.5, "seconds": 100.0, "cost_vs_retrain": 1.0},
        {**base, "method": "npo", "forget_quality": 0.0001234, "model_utility": 0.45, "seconds": 5.0,
         "cost_vs_retrain": 0.05},
    ]


def test_markdown_has_one_row_per_method_and_formats_numbers():
    text = render_markdown(_rows(), [], META)
    lines = [line for line in text.splitlines() if line.startswith("| npo")]
    assert len(lines) == 1
    cells = [c.strip() for c in lines[0].strip("|").split("|")]
    assert cells[1] == "1.2e-04"   # forget quality, tiny p-values stay readable
    assert cells[2] == "0.450"     # model utility
    assert cells[-1] == "0.050"    # cost vs retraining
    assert "## forget10" in text


def test_scatter_plot_writes_a_png(tmp_path):
    path = scatter_plot(_rows(), "forget10", tmp_path / "plots" / "fq.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert scatter_plot(_rows(), "forget05", tmp_path / "none.png") is None


def test_bench_on_the_micro_run(micro_run):
    config = BenchConfig(preset="micro", splits=("forget10",), methods=("grad_diff",), sinks=False, attacks=())
    board = run_bench(micro_run.root, config)
    by_method = {row["method"]: row for row in board["rows"]}
    assert set(by_method) == {"full", "retain", "grad_diff"}
    assert by_method["retain"]["forget_quality"] == 1.0
    assert by_method["full"]["forget_quality"] < 0.05
    assert by_method["grad_diff"]["forget_unique_accuracy"] < by_method["full"]["forget_unique_accuracy"]
    assert 0 < by_method["grad_diff"]["cost_vs_retrain"] < 1
    saved = json.loads((micro_run.root / "leaderboard.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(board["rows"]))
    assert "| grad_diff |" in (micro_run.root / "leaderboard.md").read_text()
    assert (micro_run.plots_dir / "fq_vs_mu_forget10.png").is_file()
