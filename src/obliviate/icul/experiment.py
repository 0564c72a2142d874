"""The in-context unlearning experiment: shadow models, ICUL prompts, LiRA-Forget.

1. One base model with in-context ability (:mod:`obliviate.icul.models`).
2. ``n_models`` models fine-tuned from it, each on a random half of a population of
   ``n_points`` training points (every point is in exactly half of the models).
3. On every model, every member point is "unlearned" by each procedure and scored with
   the logit-stability score: ICUL (forget point flipped + ``s`` correct demonstrations),
   its ablations (``correct``: label kept; ``random``: another point flipped), and
   gradient ascent on groups of member points (the weight-updating baseline).
4. Leave-one-out LiRA-Forget (:mod:`obliviate.icul.lira`): each model is the target once,
   the others are its shadows. AUC 0.5 means an unlearned point looks exactly like a
   point the model never saw. Each AUC gets a 95% bootstrap interval over points, and so
   does its paired difference from no unlearning (``auc_minus_none_ci95``).

Alongside: the share of forget points whose prediction the ICUL prompt flips, the same
share for other queries (test points) under the same context, and test accuracy.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from obliviate.artifacts import fingerprint, is_model_dir
from obliviate.config import config_to_dict
from obliviate.errors import UserError
from obliviate.eval.scoring import pad_batch, pad_token_id
from obliviate.icul.lira import (
    AttackSummary,
    balanced_keep,
    bootstrap_aucs,
    lira_forget,
    logit_stability,
    percentile_interval,
    summarize,
)
from obliviate.icul.models import (
    FinetuneConfig,
    LabelledSequence,
    PretrainConfig,
    TinyLlamaSpec,
    encode_sequences,
    finetune,
    pretrain_base,
    train_tokenizer_for,
)
from obliviate.icul.prompts import MODES, IculPromptConfig, build_context
from obliviate.icul.scoring import label_logprobs
from obliviate.models.loading import load_model, load_tokenizer, read_run_config, save_model
from obliviate.train.losses import nll_loss
from obliviate.world.classification import ClassificationData, ClassificationExample, generate_reviews

log = logging.getLogger(__name__)


@dataclass
class GradientAscentConfig:
    enabled: bool = True
    group_size: int = 5          # member points unlearned together in one run
    steps: int = 5
    learning_rate: float = 1e-3


@dataclass
class IculExperimentConfig:
    n_points: int = 40                       # population of the membership game (from the train split)
    n_test: int = 40                         # test points (accuracy and control queries)
    n_models: int = 8                        # each is the target once, the others its shadows
    shots: list[int] = field(default_factory=lambda: [2, 4, 6])
    modes: list[str] = field(default_factory=lambda: ["flip", "correct", "random"])
    fix_variance: bool = True
    bootstrap: int = 1000                    # resamples of the points for the AUC's 95% interval (0: none)
    seed: int = 0
    batch_size: int = 32
    model: TinyLlamaSpec = field(default_factory=TinyLlamaSpec)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    gradient_ascent: GradientAscentConfig = field(default_factory=GradientAscentConfig)

    def validate(self) -> "IculExperimentConfig":
        bad = [m for m in self.modes if m not in MODES]
        if bad:
            raise UserError(f"unknown ICUL mode(s) {bad}; valid: {', '.join(MODES)}")
        if any(s < 0 for s in self.shots):
            raise UserError(f"shots must be >= 0, got {self.shots}")
        if self.n_models < 3:
            raise UserError(f"n_models must be >= 3 for leave-one-out LiRA, got {self.n_models}")
        return self


def gradient_ascent(model, tokenizer, points: list[ClassificationExample], config: GradientAscentConfig):
    """A copy of ``model`` after ``steps`` of ascent on the label NLL of ``points`` (full batch)."""
    model = copy.deepcopy(model)
    model.train()
    examples = encode_sequences(tokenizer, [LabelledSequence([(p.text, p.label)]) for p in points])
    device = next(model.parameters()).device   # the Trainer may have moved the fine-tuned model to a GPU
    input_ids, attention_mask = pad_batch([e["input_ids"] for e in examples], pad_token_id(tokenizer), "right")
    labels, _ = pad_batch([e["labels"] for e in examples], -100, "right")
    input_ids, attention_mask, labels = input_ids.to(device), attention_mask.to(device), labels.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.0)
    for _ in range(config.steps):
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        loss = -nll_loss(logits, labels)  # ascend the forget points' label NLL
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    return model


def in_context_diagnostics(model, tokenizer, queries: list[ClassificationExample], pool: list[ClassificationExample],
                           labels, shots: int = 4, seed: int = 0, batch_size: int = 32) -> dict:
    """How much a model's in-context ability moves its predictions: each query is put after a
    context holding itself with its label flipped (or kept) plus ``shots`` demonstrations, and
    after the same context with another query ("other"). Mean logit-stability and flip rates."""
    y = np.array([list(labels).index(e.label) for e in queries])
    plain = label_logprobs(model, tokenizer, [e.text for e in queries], labels, batch_size)
    out = {"phi_plain": float(logit_stability(plain, y).mean())}
    for mode in ("flip", "correct"):
        own, other = [], []
        for i, query in enumerate(queries):
            context = build_context([query], pool, labels, IculPromptConfig(shots=shots, mode=mode),
                                    random.Random(f"diag-{seed}-{i}-{mode}"))
            own.append(context.prompt(query.text))
            other.append(context.prompt(queries[(i + 1) % len(queries)].text))
        scored = label_logprobs(model, tokenizer, own + other, labels, batch_size)
        own_lp, other_lp = scored[: len(queries)], scored[len(queries):]
        out[f"phi_{mode}_context"] = float(logit_stability(own_lp, y).mean())
        out[f"flip_rate_{mode}_context"] = float((own_lp.argmax(1) != plain.argmax(1)).mean())
        if mode == "flip":
            out["phi_other_query"] = float(logit_stability(other_lp, np.roll(y, -1)).mean())
            out["flip_rate_other_query"] = float((other_lp.argmax(1) != np.roll(plain.argmax(1), -1)).mean())
    return out


def _choose_points(data: ClassificationData, config: IculExperimentConfig):
    train, test = data.train, data.test
    if len(train) < config.n_points:
        raise UserError(f"the membership game needs n_points={config.n_points} training points, "
                        f"the data has {len(train)}")
    if not test:
        raise UserError("the data has no test split (rows with \"split\": \"test\")")
    rng = random.Random(f"icul-points-{config.seed}")
    return rng.sample(train, config.n_points), test[: config.n_test]


def base_model(data: ClassificationData, config: IculExperimentConfig, cache_dir: Path | None = None):
    """The tokenizer and in-context base model of an experiment, reused from ``cache_dir`` when
    a base with the same data, model and meta-training settings was saved there."""
    key = fingerprint({"texts": [e.text for e in data.examples], "labels": list(data.labels), "seed": config.seed,
                       "model": config_to_dict(config.model), "pretrain": config_to_dict(config.pretrain)})
    path = None if cache_dir is None else Path(cache_dir) / f"icul-base-{key}"
    if path is not None and is_model_dir(path) and read_run_config(path).get("cache_key") == key:
        return load_tokenizer(path), load_model(path)
    exclude = {e.text for e in data.examples}
    pool = [t for t, _ in generate_reviews(f"pretrain-{config.seed}", config.pretrain.n_reviews, exclude)]
    tokenizer = train_tokenizer_for([e.text for e in data.examples] + pool, vocab_size=config.pretrain.vocab_size)
    model = pretrain_base(tokenizer, config.model, config.pretrain, seed=config.seed, exclude_texts=exclude,
                          labels=data.labels)
    if path is not None:
        save_model(model, tokenizer, path, run_config={"cache_key": key})
    return tokenizer, model


def base_diagnostics(data: ClassificationData, config: IculExperimentConfig, cache_dir: Path | None = None,
                     shots: tuple[int, ...] = (0, 2, 4, 6)) -> dict:
    """The base model's in-context diagnostics for each context size, without the shadow-model game:
    the cheap check that the base really reads labels from its context before the whole experiment."""
    started = time.perf_counter()
    population, test = _choose_points(data, config)
    tokenizer, base = base_model(data, config, cache_dir)
    base_seconds = time.perf_counter() - started
    by_shots = {str(s): in_context_diagnostics(base, tokenizer, test, population, data.labels, s, config.seed,
                                               config.batch_size) for s in shots}
    return {"config": config_to_dict(config), "base_in_context": by_shots,
            "timing": {"base_seconds": round(base_seconds, 1), "total_seconds": round(time.perf_counter() - started, 1)}}


@dataclass
class _Game:
    """The fixed setup of one experiment: the points, who is a member of which model, the variants."""
    config: IculExperimentConfig
    population: list[ClassificationExample]
    test: list[ClassificationExample]
    labels: tuple[str, ...]
    keep: np.ndarray                 # (models, points): point i is in model k's training set
    members_needed: int              # the smallest training set of any model
    y_pop: np.ndarray
    y_test: np.ndarray
    variants: list[tuple[str, int]]  # (mode, shots) of every ICUL prompt scored
    control_index: np.ndarray        # the test query paired with each forget point's context

    @property
    def diagnostic_shots(self) -> int:
        """Demonstrations in the in-context diagnostics (a model has ``members_needed - 1`` to spare)."""
        return min(4, self.members_needed - 1)


def _setup_game(data: ClassificationData, config: IculExperimentConfig) -> _Game:
    """Choose the points and the balanced membership; UserError when a shot count exceeds the
    training points a model has besides the forget point."""
    population, test = _choose_points(data, config)
    keep = balanced_keep(config.n_models, config.n_points, config.seed)
    members_needed = int(keep.sum(axis=1).min())   # the smallest training set (odd model counts vary)
    for shots in config.shots:
        if shots > members_needed - 1:
            raise UserError(f"shots={shots} is larger than the {members_needed - 1} training points a model has "
                            "besides the forget point")
    y_pop = np.array([data.label_index(e.label) for e in population])
    y_test = np.array([data.label_index(e.label) for e in test])
    variants = [(mode, shots) for mode in config.modes for shots in config.shots]
    control_index = np.arange(keep.shape[1]) % len(test)
    return _Game(config, population, test, data.labels, keep, members_needed, y_pop, y_test, variants, control_index)


def _replay_reviews(data: ClassificationData, config: IculExperimentConfig) -> list:
    """The meta-training reviews replayed during fine-tuning (none when replay is off)."""
    if config.finetune.replay > 0:
        return generate_reviews(f"pretrain-{config.seed}", config.pretrain.n_reviews, {e.text for e in data.examples})
    return []


@dataclass
class _Scores:
    """Label log-probabilities of every model (NaN where a point was not scored)."""
    plain: np.ndarray                                        # (models, points, labels), no context
    test_plain: np.ndarray                                   # (models, test points, labels)
    unlearned: dict[tuple[str, int], np.ndarray]             # per variant: forget point after its ICUL context
    control: dict[tuple[str, int], np.ndarray]               # per variant: the paired test query, same context
    ga: np.ndarray                                           # forget points after gradient ascent
    ga_test_correct: list[float] = field(default_factory=list)
    finetuned_diagnostics: list[dict] = field(default_factory=list)

    @classmethod
    def empty(cls, game: _Game) -> _Scores:
        """Zeros for the plain scores, NaN for the unlearned ones."""
        n_models, n_points = game.keep.shape
        shape = (n_models, n_points, len(game.labels))
        return cls(plain=np.zeros(shape), test_plain=np.zeros((n_models, len(game.test), len(game.labels))),
                   unlearned={v: np.full(shape, np.nan) for v in game.variants},
                   control={v: np.full(shape, np.nan) for v in game.variants},
                   ga=np.full(shape, np.nan))


def _score_icul(game: _Game, scores: _Scores, model, tokenizer, k: int, members: list[ClassificationExample],
                member_index: list[int]) -> None:
    """Score model ``k``'s members after each variant's ICUL context, and the paired test queries."""
    config, population, labels = game.config, game.population, game.labels
    for mode, shots in game.variants:
        prompt_config = IculPromptConfig(shots=shots, mode=mode)
        prompts, controls = [], []
        for i in member_index:
            rng = random.Random(f"icul-{config.seed}-{k}-{i}-{mode}-{shots}")
            context = build_context([population[i]], members, labels, prompt_config, rng)
            prompts.append(context.prompt(population[i].text))
            controls.append(context.prompt(game.test[game.control_index[i]].text))
        scored = label_logprobs(model, tokenizer, prompts + controls, labels, config.batch_size)
        scores.unlearned[(mode, shots)][k, member_index] = scored[: len(prompts)]
        scores.control[(mode, shots)][k, member_index] = scored[len(prompts):]


def _score_gradient_ascent(game: _Game, scores: _Scores, model, tokenizer, k: int, member_index: list[int]) -> None:
    """Unlearn model ``k``'s members by gradient ascent in shuffled groups; score each group and test accuracy."""
    config, population, labels = game.config, game.population, game.labels
    order = list(member_index)
    random.Random(f"icul-ga-{config.seed}-{k}").shuffle(order)
    size = max(1, config.gradient_ascent.group_size)
    for start in range(0, len(order), size):
        group = order[start:start + size]
        ascended = gradient_ascent(model, tokenizer, [population[i] for i in group], config.gradient_ascent)
        scores.ga[k, group] = label_logprobs(ascended, tokenizer, [population[i].text for i in group], labels,
                                             config.batch_size)
        test_lp = label_logprobs(ascended, tokenizer, [e.text for e in game.test], labels, config.batch_size)
        scores.ga_test_correct.append(float((test_lp.argmax(1) == game.y_test).mean()))


def _score_model(game: _Game, scores: _Scores, base, tokenizer, replay_reviews: list, k: int) -> None:
    """Fine-tune model ``k`` on its members and record all its scores and in-context diagnostics."""
    config, population, labels = game.config, game.population, game.labels
    n_points = game.keep.shape[1]
    members = [population[i] for i in range(n_points) if game.keep[k, i]]
    model = finetune(base, tokenizer, members, config.finetune, seed=config.seed * 1000 + k,
                     replay_reviews=replay_reviews, replay_config=config.pretrain, labels=labels)
    scores.plain[k] = label_logprobs(model, tokenizer, [e.text for e in population], labels, config.batch_size)
    scores.test_plain[k] = label_logprobs(model, tokenizer, [e.text for e in game.test], labels, config.batch_size)
    # the same in-context check as the base's, on never-seen test points: does the fine-tuned model
    # still read its context (else ICUL cannot work on it, whatever the members do)?
    scores.finetuned_diagnostics.append(in_context_diagnostics(model, tokenizer, game.test, members, labels,
                                                               game.diagnostic_shots, config.seed + k,
                                                               config.batch_size))
    member_index = [i for i in range(n_points) if game.keep[k, i]]
    _score_icul(game, scores, model, tokenizer, k, members, member_index)
    if config.gradient_ascent.enabled:
        _score_gradient_ascent(game, scores, model, tokenizer, k, member_index)


def _phi(logprobs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Logit stability per (model, point); NaN where the log-probabilities are NaN."""
    flat = logprobs.reshape(-1, logprobs.shape[-1])
    filled = np.nan_to_num(flat, nan=0.0)
    values = logit_stability(filled, np.tile(targets, logprobs.shape[0]))
    values[np.isnan(flat).any(axis=1)] = np.nan
    return values.reshape(logprobs.shape[:2])


class _Attacks:
    """LiRA-Forget against one set of plain scores; keeps each attack's statistic for the bootstrap."""

    def __init__(self, keep: np.ndarray, plain_phi: np.ndarray, fix_variance: bool):
        self.keep, self.plain_phi, self.fix_variance = keep, plain_phi, fix_variance
        self.statistics: dict[str, np.ndarray] = {}

    def run(self, name: str, unlearned_phi: np.ndarray) -> AttackSummary:
        """The attack on members scored by ``unlearned_phi`` (non-members keep their plain score)."""
        game = lira_forget(np.where(self.keep, unlearned_phi, self.plain_phi), self.plain_phi, self.keep,
                           self.fix_variance)
        self.statistics[name] = game.statistic
        return summarize(game.member, game.statistic)


def _baseline_row(game: _Game, scores: _Scores, attacks: _Attacks) -> dict:
    """The "none" row: the attack without unlearning, plus accuracies and mean scores."""
    keep, y_pop, plain_phi = game.keep, game.y_pop, attacks.plain_phi
    plain_pred = scores.plain.argmax(-1)
    row = attacks.run("none", plain_phi).as_dict()
    row.update({"test_accuracy": float((scores.test_plain.argmax(-1) == game.y_test[None, :]).mean()),
                "member_accuracy": float((plain_pred == y_pop[None, :])[keep].mean()),
                "nonmember_accuracy": float((plain_pred == y_pop[None, :])[~keep].mean()),
                "mean_phi_member": float(plain_phi[keep].mean()),
                "mean_phi_nonmember": float(plain_phi[~keep].mean())})
    return row


def _icul_row(game: _Game, scores: _Scores, attacks: _Attacks, mode: str, shots: int) -> dict:
    """One ICUL variant's row: the attack, flip rates on forget and other queries, test accuracy."""
    keep, control_index = game.keep, game.control_index
    unl_phi = _phi(scores.unlearned[(mode, shots)], game.y_pop)
    row = attacks.run(f"{mode}_s{shots}", unl_phi).as_dict()
    unl_pred = np.nan_to_num(scores.unlearned[(mode, shots)], nan=0.0).argmax(-1)
    ctrl = np.nan_to_num(scores.control[(mode, shots)], nan=0.0).argmax(-1)
    paired_test_pred = scores.test_plain.argmax(-1)[:, control_index]
    row.update({
        "flip_rate_forget": float((unl_pred != scores.plain.argmax(-1))[keep].mean()),
        "flip_rate_other": float((ctrl != paired_test_pred)[keep].mean()),
        "test_accuracy": float((ctrl == game.y_test[control_index][None, :])[keep].mean()),
        "mean_phi_unlearned": float(unl_phi[keep].mean()),
    })
    return row


def _gradient_ascent_row(game: _Game, scores: _Scores, attacks: _Attacks) -> dict:
    """The gradient-ascent baseline's row: the attack, forget flip rate, test accuracy."""
    keep = game.keep
    ga_phi = _phi(scores.ga, game.y_pop)
    row = attacks.run("gradient_ascent", ga_phi).as_dict()
    row.update({"flip_rate_forget": float((np.nan_to_num(scores.ga, nan=0.0).argmax(-1)
                                           != scores.plain.argmax(-1))[keep].mean()),
                "test_accuracy": float(np.mean(scores.ga_test_correct)),
                "mean_phi_unlearned": float(ga_phi[keep].mean())})
    return row


def _add_intervals(results: dict[str, dict], keep: np.ndarray, statistics: dict[str, np.ndarray],
                   config: IculExperimentConfig) -> None:
    """95% intervals of each AUC and of its paired difference from no unlearning (same resampled points)."""
    samples = bootstrap_aucs(keep, statistics, config.bootstrap, config.seed)
    for name, row in results.items():
        row["auc_ci95"] = list(percentile_interval(samples[name]))
        if name != "none":
            row["auc_minus_none"] = row["auc"] - results["none"]["auc"]
            row["auc_minus_none_ci95"] = list(percentile_interval(samples[name] - samples["none"]))


def _game_results(game: _Game, scores: _Scores) -> dict[str, dict]:
    """Every procedure's row: no unlearning, each ICUL variant, gradient ascent; with intervals."""
    config = game.config
    attacks = _Attacks(game.keep, _phi(scores.plain, game.y_pop), config.fix_variance)
    results: dict[str, dict] = {"none": _baseline_row(game, scores, attacks)}
    for mode, shots in game.variants:
        results[f"{mode}_s{shots}"] = _icul_row(game, scores, attacks, mode, shots)
    if config.gradient_ascent.enabled:
        results["gradient_ascent"] = _gradient_ascent_row(game, scores, attacks)
    if config.bootstrap:
        _add_intervals(results, game.keep, attacks.statistics, config)
    return results


def _mean_diagnostics(diagnostics: list[dict]) -> dict[str, float]:
    """Each diagnostic's mean over the models."""
    return {key: float(np.mean([d[key] for d in diagnostics])) for key in diagnostics[0]}


def run_experiment(data: ClassificationData, config: IculExperimentConfig = IculExperimentConfig(),
                   progress: bool = False, cache_dir: Path | None = None) -> dict:
    """Run the whole game; returns a JSON-able dict ``{"config", "results", "timing"}``.

    ``cache_dir`` keeps the (expensive) in-context base model between runs."""
    config.validate()
    started = time.perf_counter()
    game = _setup_game(data, config)
    tokenizer, base = base_model(data, config, cache_dir)
    base_seconds = time.perf_counter() - started
    replay_reviews = _replay_reviews(data, config)
    diagnostics = in_context_diagnostics(base, tokenizer, game.test, game.population, game.labels,
                                         game.diagnostic_shots, config.seed, config.batch_size)
    scores = _Scores.empty(game)
    n_models = game.keep.shape[0]
    for k in range(n_models):
        _score_model(game, scores, base, tokenizer, replay_reviews, k)
        if progress:
            log.warning("model %d/%d done (%.0fs)", k + 1, n_models, time.perf_counter() - started)
    return {
        "config": config_to_dict(config),
        "results": _game_results(game, scores),
        "base_in_context": diagnostics,
        "finetuned_in_context": _mean_diagnostics(scores.finetuned_diagnostics),   # mean over the models
        "timing": {"base_seconds": round(base_seconds, 1), "total_seconds": round(time.perf_counter() - started, 1)},
    }
