"""The leaderboard's saga section: WHP's own target (the ``saga`` split, a book series).

Every method is graded against the model retrained without the saga (``retain-saga``):
familiarity (completion- and probability-based, from the evaluator), model utility,
retain / general truth ratio, forget quality, and the cost of the deletion request as a
ratio to that retraining. WHP runs with its default config; while it fine-tunes, a
``FamiliarityCurve`` callback probes familiarity every ``curve_every`` steps (the WHP
paper's figure), next to the full and retrained levels; the probing time is taken out of
WHP's cost.
"""

from __future__ import annotations

import logging
import time

from obliviate.errors import UserError
from obliviate.formatting import format_metric
from obliviate.models.loading import load_model, load_model_and_tokenizer
from obliviate.whp.curve import FamiliarityCurve, FamiliarityProbe
from obliviate.workflows.bench.config import BenchConfig
from obliviate.workflows.bench.native import sink_rows
from obliviate.workflows.bench.plots import FAMILIARITY
from obliviate.workflows.bench.rows import make_row, table, training_seconds
from obliviate.workflows.evaluate import evaluate_model_dir, reference_for
from obliviate.workflows.run_dir import RunDir
from obliviate.workflows.train import train_run
from obliviate.workflows.unlearn import run_unlearning

log = logging.getLogger(__name__)

SAGA = "saga"
SAGA_COLUMNS = (
    ("familiarity_completion", "familiarity (completion)"), ("familiarity_probability", "familiarity (probability)"),
    ("model_utility", "MU"), ("retain_truth_ratio", "retain TR"), ("general_truth_ratio", "general TR"),
    ("forget_quality", "FQ"), ("forget_unique_accuracy", "saga QA acc"),
)


def saga_section(run: RunDir, world, config: BenchConfig) -> dict:
    """Train the saga-free retrain (or reuse it), run WHP and ``config.saga_methods`` on the
    saga, grade them, and record WHP's familiarity curve. Returns the JSON section."""
    if SAGA not in world.splits or not world.split_sources(SAGA):
        raise UserError(f"world {world.root} has no saga split for WHP; run the bench with --no-whp")
    trained = train_run(run.world_dir, run.root, forget=SAGA, overrides=config.train_overrides,
                        progress=config.progress)
    retrain = training_seconds(trained["retain"])
    retrain_seconds = retrain["seconds"]
    reference = reference_for(run.retain_model(SAGA), world, SAGA)
    full = evaluate_model_dir(run.full_model, world, SAGA, run.eval_dir / "full-saga.json", reference=reference)
    retain = evaluate_model_dir(run.retain_model(SAGA), world, SAGA, run.eval_dir / "retain-saga.json",
                                reference=reference)
    rows = [make_row("full", SAGA, full["summary"], None, retrain_seconds, "reference"),
            make_row("retain", SAGA, retain["summary"], retrain_seconds, retrain_seconds, "gold standard")]
    curve, levels = _curve_callback(run, world, config)
    for method in ("whp", *config.saga_methods):
        out = run.model_dir(f"{method}-saga")
        callbacks = [curve] if method == "whp" else []
        started = time.perf_counter()
        result = run_unlearning(method, run.full_model, world, SAGA, out,
                                overrides=config.method_overrides.get(method, {}), evaluate=False, callbacks=callbacks)
        seconds = time.perf_counter() - started - (curve.probe_seconds if method == "whp" else 0.0)
        evaluation = evaluate_model_dir(out, world, SAGA, run.eval_dir / f"{method}-saga.json", reference=reference)
        rows.append(make_row(method, SAGA, evaluation["summary"], seconds, retrain_seconds, "post-hoc"))
        rows[-1]["steps"] = result.get("steps")
        log.info("%s on the saga: %s steps in %.1fs", method, result.get("steps"), seconds)
    if config.sinks:
        rows.extend(sink_rows(run, world, SAGA, reference, config, retrain_seconds))
    whp = next(r for r in rows if r["method"] == "whp")
    familiarity_curve = {
        "method": "whp", "every": config.curve_every, "steps": whp["steps"], "points": curve.points, "levels": levels,
        "final": {k: whp[k] for k, _ in FAMILIARITY},   # the full evaluator on the saved model
        "probe_seconds": round(curve.probe_seconds, 2),
    }
    return {"retrain": retrain, "rows": rows, "familiarity_curve": familiarity_curve}


def _curve_callback(run: RunDir, world, config: BenchConfig):
    """A familiarity probe for WHP's fine-tuning, starting from the full model's level; the
    full and saga-free models' levels are probed the same way."""
    full, tokenizer = load_model_and_tokenizer(run.full_model)
    probe = FamiliarityProbe(world, tokenizer)
    levels = {"full": probe.measure(full), "retain": probe.measure(load_model(run.retain_model(SAGA)))}
    return FamiliarityCurve(probe, config.curve_every, points=[{"step": 0, **levels["full"]}]), levels


def render_saga_markdown(saga: dict) -> list[str]:
    curve = saga["familiarity_curve"]
    lines = ["## saga (WHP's target)", "",
             "Every method unlearns the whole saga (a fictional book series) from the full model and is graded "
             "against the model retrained without it (`retain`). Familiarity: completion-based (greedy completions "
             "of saga-flavoured prompts graded 0-3 by the world's judge, score (5·#3 + #2)/N, 0 = no saga "
             "knowledge) and probability-based (probability mass on saga-specific continuations). "
             "TR = truth ratio (retain / general: mean(max(0, 1 - TR)), higher = better kept). WHP runs with its "
             "default config (alpha = 5, hard labels); its cost includes training the reinforced model.", ""]
    lines += table("method", [h for _, h in SAGA_COLUMNS] + ["seconds", "cost vs retrain"],
                   [[row["method"], *(format_metric(row.get(k)) for k, _ in SAGA_COLUMNS),
                     format_metric(row["seconds"]), format_metric(row["cost_vs_retrain"])] for row in saga["rows"]])
    steps = [p["step"] for p in curve["points"]]
    lines += ["", "### Familiarity over WHP fine-tuning steps", "",
              f"Measured every {curve['every']} steps while the WHP run above fine-tunes ({curve['steps']} steps; "
              "probing time is not counted in its cost); plots/familiarity_curves.png.", ""]
    lines += table("familiarity", [f"step {s}" for s in steps] + ["full model", "retrained without saga"],
                   [[name, *(format_metric(p.get(key)) for p in curve["points"]),
                     format_metric(curve["levels"]["full"].get(key)), format_metric(curve["levels"]["retain"].get(key))]
                    for key, name in FAMILIARITY])
    lines.append("")
    return lines
