"""The leaderboard: rendering on hand-made rows, a one-method bench on the micro run, and
the saga section (WHP, familiarity curve) on the micro run."""

from __future__ import annotations

import json

import pytest

from obliviate.errors import UserError
from obliviate.workflows.bench.leaderboard import BenchConfig, render_markdown, run_bench
from obliviate.workflows.bench.plots import scatter_plot
from obliviate.workflows.bench.rows import deletion_costs

PNG = b"\x89PNG\r\n\x1a\n"

META = {"preset": "micro", "seed": 0, "splits": ["forget10"], "command": "obliviate bench", "attack_split": "forget10",
        "date": "2026-11-22", "machine": "test"}


def _rows():
    base = {"split": "forget10", "kind": "x", "forget_truth_ratio": 0.5, "mia_min_k": 0.6, "privleak": -3.0,
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
    assert path.read_bytes()[:8] == PNG
    assert scatter_plot(_rows(), "forget05", tmp_path / "none.png") is None


def test_bench_on_the_micro_run(micro_run):
    config = BenchConfig(preset="micro", splits=("forget10",), methods=("grad_diff",), sinks=False, attacks=(),
                         whp=False)
    board = run_bench(micro_run.root, config)
    by_method = {row["method"]: row for row in board["rows"]}
    assert set(by_method) == {"full", "retain", "grad_diff"}
    assert by_method["retain"]["forget_quality"] == 1.0
    # micro's forget10 has 18 items (10 unique): the KS test over all of them (open-unlearning's
    # forget quality) measured 0.056 for the full model, the unique-fact variant 0.002
    assert by_method["full"]["forget_quality_unique"] < 0.05
    assert by_method["full"]["forget_quality"] < 0.1
    assert by_method["retain"]["forget_quality_unique"] == 1.0
    assert by_method["grad_diff"]["forget_unique_accuracy"] < by_method["full"]["forget_unique_accuracy"]
    assert 0 < by_method["grad_diff"]["cost_vs_retrain"] < 1
    saved = json.loads((micro_run.root / "leaderboard.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(board["rows"]))
    assert "| grad_diff |" in (micro_run.root / "leaderboard.md").read_text()
    assert (micro_run.plots_dir / "fq_vs_mu_forget10.png").is_file()


def test_deletion_costs_and_their_table_cover_unlearned_models_only():
    rows = [{**row, "kind": "gold standard" if row["method"] == "retain" else "post-hoc"} for row in _rows()]
    rows.append({**rows[1], "method": "switch", "kind": "native", "cost_vs_retrain": 0.001})
    assert deletion_costs(rows) == {"npo": {"forget10": 0.05}, "switch": {"forget10": 0.001}}
    meta = {**META, "retrain": {"forget10": {"seconds": 100.0, "trained_now": True}},
            "sink_training": {"sinks_seconds": 30.0, "dense_seconds": 20.0, "sinks_over_dense": 1.5}}
    text = render_markdown(rows, [], meta)
    table = text[text.index("## Cost of one deletion request"):]
    assert "| npo | 0.050 |" in table and "| switch | 0.001 |" in table and "| retain |" not in table
    assert "forget10 100 s" in table and "(x1.500)" in table


def test_whp_on_author_splits_and_a_bad_curve_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="saga"):
        run_bench(tmp_path / "run", BenchConfig(preset="micro", methods=("whp",)))
    with pytest.raises(UserError, match="curve"):
        run_bench(tmp_path / "run", BenchConfig(preset="micro", methods=(), curve_every=0))
    assert not (tmp_path / "run").exists()   # refused before any work


def test_native_rows_and_their_attacks_on_the_micro_run(micro_run, micro_sink_model):
    """The sink model is trained once (by the command line, conftest) and reused here; the switch
    is graded as served and attacked with its mask enforced; the purge is a plain Llama graded
    and attacked as released weights."""
    config = BenchConfig(preset="micro", splits=("forget10",), methods=(), sinks=True, attacks=("relearn",),
                         whp=False)
    board = run_bench(micro_run.root, config)
    assert board["meta"]["sink_training"]["trained_now"]["sinks"] is False   # the CLI-trained model was reused
    by_method = {row["method"]: row for row in board["rows"]}
    assert {"sinks (nothing off)", "switch", "purge", "purge-routed"} <= set(by_method)
    assert by_method["sinks (nothing off)"]["forget_unique_accuracy"] >= 0.8
    assert by_method["switch"]["forget_unique_accuracy"] <= 0.2
    assert by_method["purge"]["forget_unique_accuracy"] <= 0.2
    assert by_method["purge-routed"]["forget_unique_accuracy"] <= 0.2
    # the routed export keeps routing: the surviving sources' unique facts stay near the switch's;
    # zeroing the units a purged source shares with kept ones costs some (world v2: 0.91 -> 0.80),
    # while the all-mode export keeps almost none of them
    routed, switch = (by_method[m]["retain_unique_accuracy"] for m in ("purge-routed", "switch"))
    assert routed >= switch - 0.15 and routed > by_method["purge"]["retain_unique_accuracy"] + 0.3
    kept = by_method["purge"]["units"]["units_kept"]
    assert sum(kept) < 256 * len(kept)   # units cut out
    purged_config = json.loads((micro_run.model_dir("purge-forget10") / "config.json").read_text())
    assert purged_config["model_type"] == "llama" and "forgotten" not in purged_config
    attacked = {row["method"]: row["summary"] for row in board["attacks"]}
    assert set(attacked) == {"switch", "purge", "purge-routed"}
    for summary in attacked.values():
        assert summary["relearn_accuracy_after"] is not None
    assert "| switch |" in (micro_run.root / "leaderboard.md").read_text()


def test_saga_section_and_familiarity_curve_on_the_micro_run(micro_run):
    # short runs: WHP's 6 steps at a higher learning rate already lower familiarity on micro
    overrides = {"grad_diff": {"max_steps": "10"}, "whp": {"finetune_steps": "6", "lr": "2e-3"}}
    config = BenchConfig(preset="micro", splits=(), methods=(), sinks=False, attacks=(), saga_methods=("grad_diff",),
                         curve_every=2, method_overrides=overrides)
    board = run_bench(micro_run.root, config)
    saga = board["saga"]
    by_method = {row["method"]: row for row in saga["rows"]}
    assert set(by_method) == {"full", "retain", "whp", "grad_diff"}
    full, retain, whp = by_method["full"], by_method["retain"], by_method["whp"]
    assert retain["forget_quality"] == 1.0 and full["forget_quality"] < 0.05
    for key in ("familiarity_completion", "familiarity_probability"):
        assert full[key] > retain[key] >= 0        # the full model knows the saga, the retrain does not
        assert whp[key] < full[key]                # WHP lowers both
    assert 0 < whp["model_utility"] <= 1 and whp["steps"] == 6
    assert whp["cost_vs_retrain"] > 0   # a wall-clock ratio: its size belongs to the bench, not to a test
    assert saga["retrain"]["seconds"] == retain["seconds"] > 0
    assert board["deletion_cost"]["whp"] == {"saga": whp["cost_vs_retrain"]}

    curve = saga["familiarity_curve"]
    assert [p["step"] for p in curve["points"]] == [0, 2, 4, 6]
    assert curve["points"][0]["familiarity_probability"] == curve["levels"]["full"]["familiarity_probability"]
    # the probe and the evaluator agree on the same model
    assert curve["levels"]["full"]["familiarity_completion"] == pytest.approx(full["familiarity_completion"])
    assert curve["levels"]["full"]["familiarity_probability"] == pytest.approx(full["familiarity_probability"], rel=1e-3)
    assert curve["levels"]["retain"]["familiarity_probability"] < curve["points"][-1]["familiarity_probability"] \
        < curve["points"][0]["familiarity_probability"]
    # the last point is the saved model: the probe agrees with the full evaluator on it
    assert curve["points"][-1]["familiarity_probability"] == pytest.approx(whp["familiarity_probability"], rel=1e-3)
    assert curve["points"][-1]["familiarity_completion"] == pytest.approx(whp["familiarity_completion"])
    assert curve["probe_seconds"] > 0 and whp["seconds"] > 0

    saved = json.loads((micro_run.root / "leaderboard.json").read_text())
    assert saved["saga"] == json.loads(json.dumps(saga))
    text = (micro_run.root / "leaderboard.md").read_text()
    assert "## saga (WHP's target)" in text and "| whp |" in text and "| step 6 |" in text
    for name in ("familiarity_curves.png", "fq_vs_mu_saga.png"):
        assert (micro_run.plots_dir / name).read_bytes()[:8] == PNG
