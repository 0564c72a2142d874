"""bench/bench_sequential.py on the micro run's models: two deletion requests (forget10's two
sources, so the session's retain model is the gold standard), the switch in route mode and
grad_diff applied twice."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import bench_sequential as bench  # noqa: E402


@pytest.fixture(scope="module")
def sequence(micro_run, micro_sink_model):
    from obliviate.world.loader import load_world

    world = load_world(micro_run.world_dir)
    order = sorted(world.split_sources("forget10"))
    models = {"full": micro_run.full_model, "retain": micro_run.retain_model(), "sinks": micro_sink_model}
    rows, configs = bench.sequence_run(world, order, models, methods=("grad_diff",), modes=("route",))
    return world, order, {(r["method"], r["request"]): r for r in rows}, configs


def test_requests_are_cumulative_and_graded_on_the_right_sources(sequence):
    world, order, rows, configs = sequence
    assert len(order) == 2 and set(rows) == {(m, k) for m in ("retain (gold)", "switch-route", "grad_diff")
                                             for k in range(3)}
    assert configs["grad_diff"]["max_steps"] == 40
    # the switch: after request k exactly s_1..s_k are off, and their unique facts are gone
    for k in (1, 2):
        switch = rows[("switch-route", k)]
        assert switch["forgotten"] == sorted(order[:k])
        assert list(switch["per_source_unique_accuracy"]) == [str(s) for s in order[:k]]
        assert switch["forget_unique_accuracy"] == 0.0 and switch["newest_unique_accuracy"] == 0.0
        assert switch["unlearn_seconds"] < 1.0
    # before any request the sink model knows them, and route mode keeps the survivors' facts
    assert rows[("switch-route", 0)]["forget_unique_accuracy"] >= 0.5
    assert rows[("switch-route", 2)]["retain_unique_accuracy"] == pytest.approx(
        rows[("switch-route", 0)]["retain_unique_accuracy"], abs=0.05)
    # the gold standard never saw either source; forget quality is graded against it
    assert rows[("retain (gold)", 2)]["forget_unique_accuracy"] <= 0.25
    assert rows[("retain (gold)", 2)]["forget_quality"] is None
    assert rows[("grad_diff", 2)]["forget_quality"] is not None


def test_posthoc_requests_start_from_the_previous_output(sequence):
    world, order, rows, _ = sequence
    assert rows[("grad_diff", 0)]["forget_unique_accuracy"] >= 0.5
    first, second = rows[("grad_diff", 1)], rows[("grad_diff", 2)]
    assert first["steps"] == second["steps"] == 40
    assert first["newest_unique_accuracy"] <= 0.25 and second["newest_unique_accuracy"] <= 0.25
    # request 2 forgets s_2 only; s_1 was forgotten by request 1 and is still graded
    assert set(second["per_source_unique_accuracy"]) == {str(s) for s in order}
    assert second["model_utility"] > 0.2


def test_request_task_keeps_only_sources_not_deleted_yet(micro_world):
    from obliviate.world.loader import load_world

    world = load_world(micro_world)
    order = bench.sequence_sources(world, 4)
    assert order[:2] == sorted(world.split_sources("forget10")) and len(set(order)) == 4
    view = bench.evaluation_world(world, order)
    assert not set(view.splits["retain"]) & set(order)
    task = bench.request_task(view, order, 2)
    assert task.forget_sources == {order[1]}
    assert not task.retain_sources & set(order[:2]) and set(order[2:]) <= task.retain_sources
    assert {q["source_id"] for q in task.forget_items} == {order[1]}
    assert {q["source_id"] for q in task.retain_items} <= task.retain_sources
