"""bench/sweep_methods.py's choice rule on hand-made rows, and --rechoose rewriting a sweep."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from sweep_methods import choose, choose_per_method, main  # noqa: E402

FULL = {"model_utility": 0.40, "forget_quality": 0.1, "forget_quality_unique": 0.1, "forget_unique_accuracy": 1.0,
        "forget_shared_accuracy": 1.0, "retain_unique_accuracy": 1.0, "relearn_gap": 0.9}


def row(method, lr, fq, mu, forget, retain, gap):
    return {"method": method, "settings": {"lr": lr}, "seconds": 1.0, "forget_quality": fq,
            "forget_quality_unique": fq, "model_utility": mu, "forget_unique_accuracy": forget,
            "forget_shared_accuracy": 0.0, "retain_unique_accuracy": retain, "relearn_gap": gap}


ROWS = [
    row("a", "1", 0.9, 0.40, 0.9, 1.0, 0.50),    # highest FQ but forgot nothing: out (forget bar 0.2)
    row("a", "2", 0.2, 0.39, 0.1, 0.95, 0.30),
    row("a", "3", 0.5, 0.39, 0.0, 0.95, 0.10),   # chosen: the smallest gap that passes every bar
    row("a", "4", 0.5, 0.37, 0.0, 0.95, 0.00),   # MU 0.37 < 0.95 x 0.40 = 0.38: out
    row("a", "5", 0.5, 0.40, 0.0, 0.85, 0.00),   # retain 0.85 < 0.9: out
    row("b", "1", 0.1, 0.40, 0.0, 0.5, 0.0),     # no setting of b keeps retain
    row("c", "1", 0.1, 0.40, 0.0, 0.95, 0.2),
    row("c", "2", 0.3, 0.40, 0.0, 0.95, 0.2),    # gap tie: the higher FQ
]


def test_choice_rule_by_hand():
    assert choose(ROWS[:5], FULL)["settings"] == {"lr": "3"}
    assert choose(ROWS[5:6], FULL) is None
    best = choose_per_method(ROWS, FULL)
    assert {m: r["settings"]["lr"] for m, r in best.items()} == {"a": "3", "c": "2"}


def test_rechoose_rewrites_json_and_markdown(tmp_path):
    out = tmp_path / "sweep.json"
    out.write_text(json.dumps({"run": "r", "forget": "forget10", "command": "python bench/sweep_methods.py --run r",
                               "full": FULL, "bars": {}, "rows": ROWS, "best": {}}))
    main(["--rechoose", "--out", str(out)])
    result = json.loads(out.read_text())
    assert {m: r["settings"]["lr"] for m, r in result["best"].items()} == {"a": "3", "c": "2"}
    assert result["bars"] == {"utility_share": 0.95, "retain_unique_accuracy": 0.9, "forget_unique_accuracy": 0.2}
    text = out.with_suffix(".md").read_text()
    assert "| a ** | lr 3 |" in text and "| c ** | lr 2 |" in text and "| a | lr 1 |" in text
    assert "No setting met the bars for: b" in text
