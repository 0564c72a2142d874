"""The unlearning runs on ``full`` (``obliviate.workflows.unlearn.run_unlearning``, the code of
``obliviate unlearn``), each reused while its stamp (method, resolved settings, full model) holds."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields

from obliviate.artifacts import fingerprint, is_model_dir
from obliviate.config import apply_overrides, config_to_dict
from obliviate.methods.registry import get_method
from obliviate.models.loading import read_run_config
from obliviate.whp.pipeline import WHPReport
from obliviate.workflows.run_dir import RunDir
from obliviate.workflows.unlearn import run_unlearning

from .config import MethodRun, SherlockConfig
from .state import BenchState, Stopwatch


def whp_report(report: dict) -> dict:
    """The ``WHPReport`` part of WHP's ``UnlearnResult.report`` (discovery's terms are kept apart:
    ``discovered_anchors`` comes from the written dictionary)."""
    return {f.name: report[f.name] for f in fields(WHPReport) if f.name in report}


def unlearn(runs: Sequence[MethodRun], config: SherlockConfig) -> dict:
    """Run each method on ``full`` (reusing a saved result with the same stamp)."""
    run = RunDir.open(config.run)
    state = BenchState(run.root / "bench_state.json")
    full_key = read_run_config(run.full_model).get("cache_key")
    out = {}
    for spec in runs:
        out_dir = run.model_dir(spec.id)
        # the resolved settings (defaults included): a changed method default reruns the method
        settings = config_to_dict(apply_overrides(get_method(spec.method).config_class(), dict(spec.overrides)))
        stamp = fingerprint({"method": spec.method, "settings": settings, "full": full_key})
        saved = state.get(spec.id, stamp)
        if is_model_dir(out_dir) and saved is not None:
            print(f"[unlearn] {spec.id}: reused ({saved['seconds']:.0f}s when it ran)", flush=True)
            out[spec.id] = {**saved, "reused": True}
            continue
        print(f"[unlearn] {spec.id}: {spec.method} {spec.overrides}", flush=True)
        with Stopwatch() as watch:
            result = run_unlearning(spec.method, run.full_model, run.world_dir, "forget", out_dir,
                                    overrides=dict(spec.overrides), evaluate=False)
        entry = {"stamp": stamp, "method": spec.method, "overrides": spec.overrides, "steps": result["steps"],
                 "seconds": watch.seconds, "cpu_seconds": watch.cpu_seconds}
        if spec.method == "whp" and result.get("report"):
            entry["whp_report"] = whp_report(result["report"])
        proposed = out_dir.with_name(out_dir.name + ".anchors.json")
        if proposed.is_file():
            entry["discovered_anchors"] = json.loads(proposed.read_text())
        state.put(spec.id, entry)
        out[spec.id] = {**entry, "reused": False}
        print(f"[unlearn] {spec.id}: {result['steps']} steps in {watch.seconds:.0f}s", flush=True)
    return out
