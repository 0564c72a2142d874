"""What ``obliviate bench`` runs: the leaderboard's typed config."""

from __future__ import annotations

from dataclasses import dataclass, field

# Methods run on the dense full model for author forget splits (WHP targets the saga: it
# has its own section; the switch needs a sink model: it is run on every split by `sinks`).
DENSE_METHODS = ("grad_ascent", "grad_diff", "npo", "simnpo", "rmu", "idk_dpo",      # open-unlearning's first six
                 "undial", "altpo", "satimp", "wga", "ce_u", "pdu",                   # and its other six
                 "undo", "sam", "repnoise",                                           # built to resist relearning
                 "dememorize", "icul")
SAGA_METHODS = ("grad_diff", "npo")      # run on the saga next to WHP


@dataclass
class BenchConfig:
    preset: str = "tiny"
    seed: int = 0
    splits: tuple[str, ...] = ("forget01", "forget05", "forget10")
    methods: tuple[str, ...] = DENSE_METHODS
    sinks: bool = True                   # train a sink model and grade the switch
    attacks: tuple[str, ...] = ("relearn", "icl", "adversarial", "quantize", "format")
    attack_split: str = "forget10"       # attacks are run on this split's unlearned models
    whp: bool = True                     # saga section: WHP + saga_methods vs the saga-free retrain
    saga_methods: tuple[str, ...] = SAGA_METHODS
    curve_every: int = 10                # familiarity measured every this many WHP fine-tuning steps
    method_overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    train_overrides: dict[str, str] = field(default_factory=dict)
    progress: bool = False
