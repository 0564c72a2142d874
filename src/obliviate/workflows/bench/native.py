"""The leaderboard's native rows: a sink model trained once, its forget sources switched off
(``switch``: served weights, the mask enforced by the server) and cut out of the weights
(``purge``: released weights, a stock Llama). docs/native-threat-model.md."""

from __future__ import annotations

import time

from obliviate.workflows.bench.config import BenchConfig
from obliviate.workflows.bench.rows import make_row, training_seconds
from obliviate.workflows.evaluate import evaluate_model_dir
from obliviate.workflows.purge import purge_model_dir
from obliviate.workflows.run_dir import RunDir
from obliviate.workflows.train import train_run
from obliviate.workflows.unlearn import run_unlearning

# the unlearned native models of a split, RUN/models/<row>-<split>: served with the mask on (switch),
# released as a stock Llama (purge), released as a sink model without the forgotten units (purge-routed)
NATIVE_ROWS = ("switch", "purge", "purge-routed")


def sink_training_cost(run: RunDir, config: BenchConfig) -> dict | None:
    """The native method's one-time extra cost: training with sinks vs dense, same data and config."""
    sinks = train_run(run.world_dir, run.root, arch="sinks", which=("full",), overrides=config.train_overrides,
                      progress=config.progress)["full"]
    dense = train_run(run.world_dir, run.root, which=("full",), overrides=config.train_overrides,
                      progress=config.progress)["full"]
    sink_time, dense_time = training_seconds(sinks), training_seconds(dense)
    if not dense_time["seconds"]:
        return None
    return {"sinks_seconds": sink_time["seconds"], "dense_seconds": dense_time["seconds"],
            "sinks_over_dense": sink_time["seconds"] / dense_time["seconds"],
            "trained_now": {"sinks": sink_time["trained_now"], "dense": dense_time["trained_now"]}}


def sink_rows(run: RunDir, world, split: str, reference, config: BenchConfig, retrain_seconds: float) -> list[dict]:
    """Native unlearning: train a sink model once, switch the forget sources off."""
    trained = train_run(run.world_dir, run.root, forget=split, arch="sinks", which=("full",),
                        overrides=config.train_overrides, progress=config.progress)
    sink_full = trained["full"].path
    rows = []
    evaluation = evaluate_model_dir(sink_full, world, split, run.eval_dir / f"sinks-full-{split}.json",
                                    reference=reference)
    rows.append(make_row("sinks (nothing off)", split, evaluation["summary"], None, retrain_seconds, "native"))
    out = run.model_dir(f"switch-{split}")
    started = time.perf_counter()
    run_unlearning("switch", sink_full, world, split, out, evaluate=False)
    seconds = time.perf_counter() - started
    evaluation = evaluate_model_dir(out, world, split, run.eval_dir / f"switch-{split}.json", reference=reference)
    rows.append(make_row("switch", split, evaluation["summary"], seconds, retrain_seconds, "native"))
    switch_seconds = seconds
    for name, keep_routing in (("purge", False), ("purge-routed", True)):
        purged = run.model_dir(f"{name}-{split}")
        started = time.perf_counter()
        record = purge_model_dir(out, purged, forget=split, keep_routing=keep_routing)
        seconds = switch_seconds + time.perf_counter() - started     # a purge is a switch, then the export
        evaluation = evaluate_model_dir(purged, world, split, run.eval_dir / f"{name}-{split}.json",
                                        reference=reference)
        rows.append(make_row(name, split, evaluation["summary"], seconds, retrain_seconds, "native"))
        rows[-1]["units"] = {k: record[k] for k in ("units_kept", "units_zeroed") if k in record}
    return rows
