"""Settings of the Sherlock benchmark: paths, which stories are held out, and the unlearning runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from obliviate.errors import UserError

REPO = Path(__file__).resolve().parents[2]
BENCH_DATA = REPO / "bench" / "data"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "public-domain"
DATA_FILES = ("sherlock.txt", "shakespeare.txt")

# A story title: an all-capitals line indented by 15+ spaces ("THE ADVENTURE OF THE ...",
# "A SCANDAL IN BOHEMIA", "SILVER BLAZE", ...). Collection titles match too and become
# small sources of their own (their table of contents).
SHERLOCK_HEADING = r"^ {15,}((?:THE|A) [A-Z][A-Z'\" .-]+|SILVER BLAZE|HIS LAST BOW)\s*$"
# Held-out stories: one from each of three collections, never trained on.
HOLDOUT_STORIES = ("THE YELLOW FACE", "THE ADVENTURE OF THE NORWOOD BUILDER", "THE ADVENTURE OF THE RED CIRCLE")


@dataclass
class MethodRun:
    """One unlearning run: a registered method and its ``--set`` overrides."""

    id: str
    method: str
    overrides: dict = field(default_factory=dict)


@dataclass
class SherlockConfig:
    data: Path = DEFAULT_DATA
    run: Path = REPO / "runs" / "sherlock"
    out: Path = REPO / "docs" / "results" / "sherlock"
    probes: Path = BENCH_DATA / "sherlock_probes.jsonl"
    anchors: Path = BENCH_DATA / "sherlock_anchors.json"
    preset: str = "tiny"                  # model size (obliviate.models.presets)
    steps: int = 1000                     # optimizer steps of the full and of the retain model
    learning_rate: float | None = None    # None: the preset's (obliviate.train.trainer)
    vocab_size: int = 4096
    sherlock_fraction: float = 0.5        # share of each trained story kept (its first paragraphs)
    shakespeare_chars: int = 110_000      # size of the Shakespeare sources (and of the novels' parts)
    doc_chars: int = 1200
    methods: tuple[str, ...] = ("whp_auto", "whp_hand", "whp_hand_hard", "npo", "grad_diff", "rmu")
    whp_reinforce_steps: int = 100
    whp_finetune_steps: int = 100
    method_steps: int | None = None       # None: each method's own default (docs/sweep.md)
    max_new_tokens: int = 24
    seed: int = 0
    threads: int = 1


def method_runs(config: SherlockConfig) -> list[MethodRun]:
    """The unlearning runs named in ``config.methods``, in order (whp_hand reuses whp_auto's
    reinforced model when both run)."""
    reinforced = str(config.run / "models" / "whp-reinforced")
    # soft labels (KL to softmax of the generic logits) by default: on this tiny model the paper's
    # hard (argmax) labels raised held-out Shakespeare perplexity about 4x as much for a similar
    # familiarity drop (whp-hand vs whp-hand-hard in docs/results/sherlock)
    whp = {"reinforce_steps": config.whp_reinforce_steps, "finetune_steps": config.whp_finetune_steps,
           "soft_labels": True, "seed": config.seed}
    docs = {"forget_data": "docs", "retain_data": "docs", "seed": config.seed}
    if config.method_steps is not None:
        docs["max_steps"] = config.method_steps
    known = {
        "whp_auto": MethodRun("whp-auto", "whp", {**whp, "auto_anchors": True, "save_reinforced_path": reinforced}),
        "whp_hand": MethodRun("whp-hand", "whp", {**whp, "anchors_path": str(config.anchors)}),
        "whp_hand_hard": MethodRun("whp-hand-hard", "whp", {**whp, "anchors_path": str(config.anchors),
                                                            "soft_labels": False}),
        "npo": MethodRun("npo", "npo", dict(docs)),
        "grad_diff": MethodRun("grad_diff", "grad_diff", dict(docs)),
        "simnpo": MethodRun("simnpo", "simnpo", dict(docs)),
        "rmu": MethodRun("rmu", "rmu", dict(docs)),
        "grad_ascent": MethodRun("grad_ascent", "grad_ascent", dict(docs)),
    }
    unknown = [m for m in config.methods if m not in known]
    if unknown:
        raise UserError(f"unknown method run {unknown[0]!r}; valid: {', '.join(known)}")
    runs = [known[m] for m in config.methods]
    if "whp_auto" in config.methods:
        for index, name in enumerate(config.methods):
            if name in ("whp_hand", "whp_hand_hard"):
                runs[index].overrides["reinforced_model_path"] = reinforced
    return runs
