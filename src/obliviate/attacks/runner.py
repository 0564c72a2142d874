"""Run the robustness attacks on an unlearned model (and on the retain and full models as
baselines) and collect one JSON-able result with a flat summary for tables and the
leaderboard."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Sequence

import torch

from obliviate.attacks.adversarial import AdversarialConfig, adversarial_attack
from obliviate.attacks.gcg import GCGConfig, gcg_attack
from obliviate.attacks.in_context import InContextConfig, in_context_attack
from obliviate.attacks.items import DEFAULT_KINDS, select_items, split_by_source
from obliviate.attacks.measure import MeasureConfig
from obliviate.attacks.relearn import RelearnConfig, relearning_attack
from obliviate.config import config_to_dict
from obliviate.errors import UserError

log = logging.getLogger(__name__)

ATTACK_NAMES = ("relearn", "icl", "adversarial", "gcg")


@dataclass
class AttackConfig:
    kinds: list[str] = field(default_factory=lambda: list(DEFAULT_KINDS))  # fact kinds attacked and graded
    relearn_fraction: float = 0.5     # per forget source: share of items shown to relearn / GCG; the rest held apart
    seed: int | None = None           # when set, replaces the seed of the split and of every attack
    split_seed: int = 0
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    relearn: RelearnConfig = field(default_factory=RelearnConfig)
    icl: InContextConfig = field(default_factory=InContextConfig)
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)
    gcg: GCGConfig = field(default_factory=GCGConfig)

    def seeded(self) -> "AttackConfig":
        if self.seed is None:
            return self
        seed = self.seed
        return dataclasses.replace(
            self, split_seed=seed,
            relearn=dataclasses.replace(self.relearn, seed=seed), icl=dataclasses.replace(self.icl, seed=seed),
            adversarial=dataclasses.replace(self.adversarial, seed=seed), gcg=dataclasses.replace(self.gcg, seed=seed))


def parse_attack_names(names: str | Sequence[str]) -> list[str]:
    """``"all"``, one name, a comma-separated list, or a list of names -> ordered unique names."""
    if isinstance(names, str):
        names = [n for n in names.split(",")]
    wanted = [n.strip() for n in names if n.strip()]
    if not wanted:
        raise UserError(f"no attack named; valid: {', '.join(ATTACK_NAMES)}, all")
    if "all" in wanted:
        return list(ATTACK_NAMES)
    unknown = [n for n in wanted if n not in ATTACK_NAMES]
    if unknown:
        raise UserError(f"unknown attack {unknown[0]!r}; valid: {', '.join(ATTACK_NAMES)}, all")
    return [n for n in ATTACK_NAMES if n in wanted]


def _holdout_items(world, kinds: Sequence[str]) -> list[dict]:
    if "holdout" not in world.splits:
        return []
    return sorted(world.qa_for("holdout", tuple(kinds)), key=lambda item: str(item["id"]))


def _last(curve: list[dict], key: str):
    return curve[-1].get(key) if curve else None


def summarise(results: dict) -> dict:
    """Flat snake_case numbers (null when not computed): what a table or leaderboard shows."""
    summary: dict = {}
    attacks = results["attacks"]
    if "relearn" in attacks:
        relearn = attacks["relearn"]
        curves = relearn["curves"]
        unlearned = curves.get("unlearned", [])
        summary.update({
            "relearn_accuracy_before": unlearned[0].get("accuracy") if unlearned else None,
            "relearn_accuracy_after": _last(unlearned, "accuracy"),
            "relearn_retain_accuracy_after": _last(curves.get("retain", []), "accuracy"),
            "relearn_full_accuracy": relearn["gap"]["accuracy"]["full_level"],
            "relearn_gap_accuracy": relearn["gap"]["accuracy"]["area"],
            "relearn_gap_prob": relearn["gap"]["prob"]["area"],
            "relearn_gap_value_prob": relearn["gap"]["value_prob"]["area"],
            "relearn_value_prob_after": _last(unlearned, "value_prob"),
            "relearn_retain_value_prob_after": _last(curves.get("retain", []), "value_prob"),
            "relearn_first_k_unlearned": relearn["gap"]["accuracy"]["first_k"].get("unlearned"),
            "relearn_first_k_retain": relearn["gap"]["accuracy"]["first_k"].get("retain"),
            "relearn_mia_auc_loss": _last(unlearned, "mia_auc_loss"),
        })
    if "icl" in attacks:
        curve = attacks["icl"]["curves"].get("unlearned", [])
        retain_curve = attacks["icl"]["curves"].get("retain", [])
        summary.update({
            "icl_accuracy_zero_shot": curve[0].get("accuracy") if curve else None,
            "icl_accuracy": _last(curve, "accuracy"),
            "icl_retain_accuracy": _last(retain_curve, "accuracy"),
            "icl_prob": _last(curve, "prob"),
            "icl_mia_auc_loss": _last(curve, "mia_auc_loss"),
        })
    if "adversarial" in attacks:
        model = attacks["adversarial"]["models"].get("unlearned", {})
        forms = model.get("forms", {})
        summary.update({
            "adversarial_plain_accuracy": forms.get("plain", {}).get("accuracy"),
            "adversarial_any_accuracy": model.get("any_accuracy"),
            "adversarial_best_form": model.get("best_form"),
            "adversarial_cloze_accuracy": forms.get("cloze", {}).get("accuracy"),
            "adversarial_choice_accuracy": forms.get("choice", {}).get("accuracy"),
            "adversarial_retain_any_accuracy": attacks["adversarial"]["models"].get("retain", {}).get("any_accuracy"),
        })
    if "gcg" in attacks:
        model = attacks["gcg"]["models"].get("unlearned", {})
        part = model.get("held") or model.get("optimised") or {}
        summary.update({
            "gcg_prob_without": part.get("without", {}).get("prob"),
            "gcg_prob_with": part.get("with", {}).get("prob"),
            "gcg_accuracy_without": part.get("without", {}).get("accuracy"),
            "gcg_accuracy_with": part.get("with", {}).get("accuracy"),
            "gcg_optimised_prob_with": model.get("optimised", {}).get("with", {}).get("prob"),
            "gcg_mia_auc_loss_with": ((model.get("mia") or {}).get("with") or {}).get("mia_auc_loss"),
        })
    return summary


def run_attacks(model, tokenizer, world, forget: str = "forget10", names: str | Sequence[str] = "all",
                config: AttackConfig | None = None, retain_model=None, full_model=None) -> dict:
    """Run the named attacks on ``model`` and, as baselines, on ``retain_model`` and
    ``full_model`` when given. No model is modified (relearning trains deep copies).

    Returns ``{"summary": {...}, "attacks": {name: result}, "split": {...}, "config": {...}}``.
    """
    config = (config or AttackConfig()).seeded()
    attack_names = parse_attack_names(names)
    measure = config.measure
    targets = select_items(world, forget, config.kinds)
    split = split_by_source(targets, config.split_seed, config.relearn_fraction)
    holdout = _holdout_items(world, config.kinds)
    forget_sources = world.split_sources(forget)
    holdout_sources = world.split_sources("holdout") if "holdout" in world.splits else set()
    pool = [q for q in world.qa if int(q["source_id"]) in forget_sources | holdout_sources]
    docs = world.docs_for(forget_sources | holdout_sources)
    names_by_source = {int(s["source_id"]): str(s["name"]) for s in world.sources}
    models = {"unlearned": model}
    if retain_model is not None:
        models["retain"] = retain_model
    if full_model is not None:
        models["full"] = full_model

    attacks: dict = {}
    timings: dict = {}
    for name in attack_names:
        started = time.perf_counter()
        log.info("attack %s on %s", name, ", ".join(models))
        if name == "relearn":
            attacks[name] = relearning_attack(models, tokenizer, split, holdout, world.docs_for(forget_sources),
                                              config.relearn, measure)
        elif name == "icl":
            attacks[name] = in_context_attack(models, tokenizer, targets, pool, docs, holdout if config.icl.mia else (),
                                              config.icl, measure)
        elif name == "adversarial":
            attacks[name] = adversarial_attack(models, tokenizer, targets, pool, names_by_source,
                                               holdout if config.adversarial.mia else (), config.adversarial, measure)
        elif name == "gcg":
            attacks[name] = gcg_attack(models, tokenizer, split, holdout if config.gcg.mia else (), config.gcg, measure)
        timings[name] = round(time.perf_counter() - started, 2)
    results = {
        "attacks": attacks,
        "split": {"forget": forget, "kinds": list(config.kinds), "n_items": len(targets), "n_holdout": len(holdout),
                  **split.ids()},
        "models": list(models),
        "seconds": timings,
        "config": config_to_dict(config),
    }
    if hasattr(world, "fingerprint"):
        results["world_fingerprint"] = world.fingerprint
    results["summary"] = summarise(results)
    return {"summary": results.pop("summary"), **results}


def torch_device(name: str | None) -> torch.device | None:
    if name is None:
        return None
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise UserError(f"bad device {name!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but CUDA is not available")
    return device
