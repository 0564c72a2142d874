"""``obliviate icul``: in-context unlearning on a classification task, graded by LiRA-Forget::

    obliviate icul --out icul.json [--data classification.jsonl | --world DIR] [--models 8] ...
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from obliviate.cli.app import OverwriteOption, app, check_json_out
from obliviate.errors import UserError

# what the experiment's results JSON holds (``obliviate.icul.experiment.run_experiment``)
ICUL_KEYS = ("results",)
COLUMNS = ("auc", "tpr_at_fpr_0.1", "tpr_at_fpr_0.01", "tpr_at_fpr_0.001", "flip_rate_forget", "flip_rate_other",
           "test_accuracy")


def format_table(result: dict) -> str:
    """A fixed-width table of the experiment's rows (``-`` where a column does not apply)."""
    lines = [f"{'unlearning':18s} {'auc 95% CI':>14s} {'auc-none 95% CI':>16s} "
             + " ".join(f"{c.replace('tpr_at_fpr_', 'tpr@'):>14s}" for c in COLUMNS)]
    for name, row in result["results"].items():
        interval = row.get("auc_ci95")
        difference = row.get("auc_minus_none_ci95")
        cells = [f"{row[c]:14.3f}" if isinstance(row.get(c), float) else f"{'-':>14s}" for c in COLUMNS]
        lines.append(f"{name:18s} " + (f"{interval[0]:6.3f}-{interval[1]:<7.3f}" if interval else f"{'-':>14s}")
                     + " " + (f"{difference[0]:+7.3f},{difference[1]:+7.3f} " if difference else f"{'-':>16s}")
                     + " " + " ".join(cells))
    return "\n".join(lines)


@app.command("icul")
def icul_command(
    out: Path = typer.Option(..., help="Where to write the results JSON."),
    data: Optional[Path] = typer.Option(None, help="Classification jsonl ({text, label[, split, id]}) or a world "
                                                   "directory holding classification.jsonl; default: generated."),
    labels: Optional[List[str]] = typer.Option(None, "--label", help="The label set (repeat); default: the file's."),
    points: int = typer.Option(40, help="Training points in the membership game (each in half the models)."),
    test_points: int = typer.Option(40, help="Test points for accuracy and control queries."),
    models: int = typer.Option(8, help="Models fine-tuned on random halves (each is the target once)."),
    shots: List[int] = typer.Option([2, 4, 6], "--shots", help="Correct demonstrations s (repeat the option)."),
    modes: List[str] = typer.Option(["flip", "correct", "random"], "--mode", help="flip (ICUL), correct, random."),
    pretrain_steps: int = typer.Option(7000, help="Meta-training steps of the in-context base model "
                                                  "(~30 min on 2 CPU cores, ~5 on a GPU; cached with --cache-dir)."),
    no_gradient_ascent: bool = typer.Option(False, help="Skip the gradient-ascent baseline."),
    cache_dir: Optional[Path] = typer.Option(None, help="Keep the base model here between runs."),
    seed: int = typer.Option(0, help="Seed of data sampling, masks and training."),
    overwrite: OverwriteOption = False,
) -> None:
    """In-context unlearning on a classification task, graded by LiRA-Forget with shadow models."""
    from obliviate.icul.experiment import IculExperimentConfig, run_experiment
    from obliviate.icul.models import PretrainConfig
    from obliviate.io import atomic_write_json
    from obliviate.world.classification import generate_classification, load_classification

    check_json_out(out, ICUL_KEYS, "an in-context unlearning results JSON", overwrite)
    if cache_dir is not None and cache_dir.exists() and not cache_dir.is_dir():
        raise UserError(f"--cache-dir {cache_dir} exists and is not a directory")
    if data is not None and not data.exists():
        raise UserError(f"classification data not found: {data}")
    for option, value, least in (("--points", points, 2), ("--test-points", test_points, 1),
                                 ("--pretrain-steps", pretrain_steps, 1)):
        if value < least:
            raise UserError(f"{option} must be at least {least}, got {value}")
    config = IculExperimentConfig(n_points=points, n_test=test_points, n_models=models, shots=list(shots),
                                  modes=list(modes), seed=seed, pretrain=PretrainConfig(steps=pretrain_steps))
    config.gradient_ascent.enabled = not no_gradient_ascent
    config.validate()   # before the data is generated
    if data is None:
        data = generate_classification(seed, max(points, 200), max(test_points, 100), out.parent / f".{out.stem}-data")
    dataset = load_classification(data, labels=labels or None)
    result = run_experiment(dataset, config, progress=True, cache_dir=cache_dir)
    atomic_write_json(out, result)
    typer.echo(format_table(result))
    typer.echo(f"wrote {out}")
