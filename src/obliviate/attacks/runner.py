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

from obliviate.attacks.format_shift import FormatConfig, format_shift_attack, parse_forms, render_forms
from obliviate.attacks.adversarial import AdversarialConfig, adversarial_attack
from obliviate.attacks.gcg import GCGConfig, gcg_attack
from obliviate.attacks.in_context import InContextConfig, in_context_attack
from obliviate.attacks.items import DEFAULT_KINDS, select_items, split_by_source
from obliviate.attacks.measure import MeasureConfig, measure_format
from obliviate.attacks.quantize import UNQUANTIZED, QuantizeConfig, quantization_attack, validate_bits
from obliviate.attacks.relearn import RelearnConfig, relearning_attack
from obliviate.config import config_to_dict
from obliviate.errors import UserError
from obliviate.eval.config import EvalConfig

log = logging.getLogger(__name__)

ATTACK_NAMES = ("relearn", "icl", "adversarial", "gcg", "quantize", "format")


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
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    format: FormatConfig = field(default_factory=FormatConfig)

    def seeded(self) -> "AttackConfig":
        if self.seed is None:
            return self
        seed = self.seed
        return dataclasses.replace(
            self, split_seed=seed,
            relearn=dataclasses.replace(self.relearn, seed=seed), icl=dataclasses.replace(self.icl, seed=seed),
            adversarial=dataclasses.replace(self.adversarial, seed=seed), gcg=dataclasses.replace(self.gcg, seed=seed),
            format=dataclasses.replace(self.format, seed=seed))


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
            "relearn_mia_loss": _last(unlearned, "mia_loss"),
        })
    if "icl" in attacks:
        curve = attacks["icl"]["curves"].get("unlearned", [])
        retain_curve = attacks["icl"]["curves"].get("retain", [])
        summary.update({
            "icl_accuracy_zero_shot": curve[0].get("accuracy") if curve else None,
            "icl_accuracy": _last(curve, "accuracy"),
            "icl_retain_accuracy": _last(retain_curve, "accuracy"),
            "icl_prob": _last(curve, "prob"),
            "icl_mia_loss": _last(curve, "mia_loss"),
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
            "gcg_mia_loss_with": ((model.get("mia") or {}).get("with") or {}).get("mia_loss"),
        })
    if "quantize" in attacks:
        summary.update(quantize_summary(attacks["quantize"]))
    if "format" in attacks:
        summary.update(format_summary(attacks["format"]))
    return summary


QUANTIZE_SUMMARY_METRICS = ("forget_accuracy", "forget_unique_accuracy", "retain_accuracy", "forget_truth_ratio",
                            "forget_quality", "mia_loss")


def quantize_summary(result: dict) -> dict:
    """``quantize_<metric>_<level>`` of the unlearned model (level: unquantized, 8, 4) and
    ``quantize_retain_model_forget_accuracy_<level>`` of the retain model (the floor)."""
    summary: dict = {}
    unlearned = result["models"].get("unlearned", {})
    retain = result["models"].get("retain", {})
    for label in [UNQUANTIZED] + [str(b) for b in result["bits"]]:
        if label not in unlearned:
            continue
        for metric in QUANTIZE_SUMMARY_METRICS:
            summary[f"quantize_{metric}_{label}"] = unlearned[label].get(metric)
        summary[f"quantize_retain_model_forget_accuracy_{label}"] = retain.get(label, {}).get("forget_accuracy")
    return summary


def format_summary(result: dict) -> dict:
    """The unlearned model's worst form, its accuracy and above-chance score, the plain QA
    accuracy, ``format_<form>_accuracy`` per form, and the retain model's worst case."""
    unlearned = result["models"].get("unlearned", {})
    retain = result["models"].get("retain", {})
    summary = {
        "format_worst_form": unlearned.get("worst_form"),
        "format_worst_forget_accuracy": unlearned.get("worst_forget_accuracy"),
        "format_worst_above_chance": unlearned.get("worst_above_chance"),
        "format_plain_accuracy": unlearned.get("plain_forget_accuracy"),
    }
    for form in result["forms"]:
        summary[f"format_{form}_accuracy"] = unlearned.get("forms", {}).get(form, {}).get("forget_accuracy")
    summary["format_retain_worst_forget_accuracy"] = retain.get("worst_forget_accuracy")
    summary["format_retain_worst_above_chance"] = retain.get("worst_above_chance")
    return summary


def run_attacks(model, tokenizer, world, forget: str = "forget10", names: str | Sequence[str] = "all",
                config: AttackConfig | None = None, retain_model=None, full_model=None) -> dict:
    """Run the named attacks on ``model`` and, as baselines, on ``retain_model`` and
    ``full_model`` when given. No model is modified (relearning trains deep copies).

    Returns ``{"summary": {...}, "attacks": {name: result}, "split": {...}, "config": {...}}``.
    """
    config = (config or AttackConfig()).seeded()
    attack_names = parse_attack_names(names)
    # one QA format for every attack and model (None: the tokenizer's chat template if it has one)
    measure = dataclasses.replace(config.measure, chat_template=measure_format(tokenizer, config.measure).chat)
    config = dataclasses.replace(config, measure=measure)
    targets = select_items(world, forget, config.kinds)
    split = split_by_source(targets, config.split_seed, config.relearn_fraction)
    holdout = _holdout_items(world, config.kinds)
    names_by_source = {int(s["source_id"]): str(s["name"]) for s in world.sources}
    # settings that can be wrong fail here, before any attack has spent time
    if "quantize" in attack_names:
        validate_bits(config.quantize.bits)
    if "format" in attack_names:
        render_forms(*parse_forms(config.format.forms), targets, names_by_source, config.format.seed,
                     measure_format(tokenizer, measure))
    forget_sources = world.split_sources(forget)
    holdout_sources = world.split_sources("holdout") if "holdout" in world.splits else set()
    pool = [q for q in world.qa if int(q["source_id"]) in forget_sources | holdout_sources]
    docs = world.docs_for(forget_sources | holdout_sources)
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
        elif name == "quantize":
            eval_config = EvalConfig(batch_size=measure.batch_size, forget_kinds=tuple(config.kinds),
                                     chat_template=measure.chat_template, chat_options=measure.chat_options)
            attacks[name] = quantization_attack(models, tokenizer, world, forget, config.quantize, eval_config)
        elif name == "format":
            attacks[name] = format_shift_attack(models, tokenizer, targets, names_by_source, config.format, measure)
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
