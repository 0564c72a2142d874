"""In-context unlearning: classification data, prompts, LiRA, the QA wrapper, a small game."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch
from scipy.stats import norm
from sklearn.metrics import roc_auc_score
from transformers import LlamaForCausalLM

from obliviate.config import apply_overrides
from obliviate.data.format import qa_continuation, qa_prompt, qa_text
from obliviate.errors import UserError
from obliviate.eval.generation import GreedyConfig, generate_greedy
from obliviate.eval.scoring import ScoringConfig, score_continuations
from obliviate.icul.experiment import GradientAscentConfig, IculExperimentConfig, base_diagnostics, run_experiment
from obliviate.icul.lira import (
    balanced_keep,
    bootstrap_aucs,
    lira_forget,
    logit_stability,
    percentile_interval,
    rank_auc,
    summarize,
    tpr_at_fpr,
)
from obliviate.icul.models import (
    FinetuneConfig,
    LabelledSequence,
    PretrainConfig,
    TinyLlamaSpec,
    encode_sequences,
    finetune,
    new_model,
    train_tokenizer_for,
    with_replay,
)
from obliviate.icul.prompts import IculPromptConfig, build_context, flip_label
from obliviate.icul.qa import IculQAConfig, icul_model
from obliviate.methods.registry import UnlearnTask, get_method
from obliviate.models.in_context import InContextUnlearningLM
from obliviate.models.loading import load_model, save_model
from obliviate.tokenizer import train_tokenizer
from obliviate.world.classification import (
    _NEGATIVE,
    _POSITIVE,
    LABELS,
    ClassificationExample,
    generate_classification,
    load_classification,
)

# --- classification data ---------------------------------------------------------------


def _majority_label(text: str) -> str:
    """Recompute a review's label from its words: the majority polarity of its 3 judgements."""
    judgements, reviewer = text.split(": ", 1)[1].rsplit(". By ", 1)
    assert reviewer.isalpha()
    clauses = judgements.split(", ")
    votes = 0
    for clause in clauses:
        words = clause.split()
        positive = words[-1] in _POSITIVE
        assert positive or words[-1] in _NEGATIVE
        if "not" in words:
            positive = not positive
        votes += 1 if positive else -1
    return "positive" if votes > 0 else "negative"


def test_generate_classification_is_deterministic_and_labelled_by_content(tmp_path):
    first = generate_classification(3, 30, 10, tmp_path / "a")
    second = generate_classification(3, 30, 10, tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    assert generate_classification(4, 30, 10, tmp_path / "c").read_bytes() != first.read_bytes()
    rows = [json.loads(line) for line in first.read_text().splitlines()]
    assert [r["split"] for r in rows] == ["train"] * 30 + ["test"] * 10
    assert len({r["text"] for r in rows}) == 40 and len({r["id"] for r in rows}) == 40
    assert all(r["label"] == _majority_label(r["text"]) for r in rows)
    assert {r["label"] for r in rows} == set(LABELS)
    data = load_classification(tmp_path / "a")  # a world directory works too
    assert data.labels == LABELS and len(data.train) == 30 and len(data.test) == 10


def test_load_classification_user_data_and_bad_labels(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text('{"text": "great stuff", "label": "pos"}\n{"text": "awful", "label": "neg", "split": "test"}\n')
    data = load_classification(path)
    assert data.labels == ("neg", "pos")
    assert [e.id for e in data.examples] == ["row-1", "row-2"] and data.examples[0].split == "train"
    with pytest.raises(UserError, match="label 'neg', outside the label set"):
        load_classification(path, labels=["pos", "neutral"])
    path.write_text('{"text": "great", "label": "pos"}\n')
    with pytest.raises(UserError, match="at least two labels"):
        load_classification(path)
    path.write_text('{"text": "great", "label": "pos", "split": "dev"}\n')
    with pytest.raises(UserError, match="split 'dev'"):
        load_classification(path)
    path.write_text('{"text": "great"}\n')
    with pytest.raises(UserError, match="missing field"):
        load_classification(path)


# --- prompts ---------------------------------------------------------------------------------

POOL = [ClassificationExample(f"t{i}", f"text {i}.", LABELS[i % 2]) for i in range(10)]


def test_flip_label():
    rng = random.Random(0)
    assert flip_label("positive", LABELS, rng) == "negative"
    assert flip_label("negative", LABELS, rng) == "positive"
    three = ("a", "b", "c")
    assert {flip_label("a", three, random.Random(s)) for s in range(20)} == {"b", "c"}
    with pytest.raises(UserError, match="outside the label set"):
        flip_label("neutral", LABELS, rng)


def test_icul_prompt_flips_forget_label_then_demos_then_query():
    forget = POOL[3]  # "text 3." labelled positive
    context = build_context([forget], POOL, LABELS, IculPromptConfig(shots=4, mode="flip"), random.Random(1))
    assert context.lines[0] == ("text 3.", "negative")            # forget point first, label flipped
    assert len(context.lines) == 5 and len(context.demo_ids) == 4  # s = 4 correct demonstrations
    assert "t3" not in context.demo_ids                            # the forget point is no demonstration
    for (text, label), demo_id in zip(context.lines[1:], context.demo_ids):
        example = next(e for e in POOL if e.id == demo_id)
        assert (text, label) == (example.text, example.label)       # demonstrations keep true labels
    prompt = context.prompt("text 3.")
    lines = prompt.split("\n")
    assert lines[0] == "text 3. negative" and lines[-1] == "text 3." and len(lines) == 6


def test_icul_ablations_and_shot_counts():
    forget = POOL[2]  # negative
    for shots in (2, 4, 6):
        ctx = build_context([forget], POOL, LABELS, IculPromptConfig(shots=shots), random.Random(shots))
        assert len(ctx.lines) == 1 + shots
    correct = build_context([forget], POOL, LABELS, IculPromptConfig(shots=2, mode="correct"), random.Random(0))
    assert correct.lines[0] == ("text 2.", "negative")
    rand = build_context([forget], POOL, LABELS, IculPromptConfig(shots=2, mode="random"), random.Random(0))
    other = next(e for e in POOL if e.id == rand.forget_ids[0])
    assert other.id != "t2" and rand.lines[0] == (other.text, flip_label(other.label, LABELS, random.Random()))
    assert other.id not in rand.demo_ids
    none = build_context([forget], POOL, LABELS, IculPromptConfig(shots=3, mode="none"), random.Random(0))
    assert len(none.lines) == 3 and none.forget_ids == []


def test_too_many_shots_and_bad_mode_are_user_errors():
    with pytest.raises(UserError, match="shots=10 is more than the 9 training points"):
        build_context([POOL[0]], POOL, LABELS, IculPromptConfig(shots=10), random.Random(0))
    with pytest.raises(UserError, match="unknown ICUL mode"):
        build_context([POOL[0]], POOL, LABELS, IculPromptConfig(mode="shuffle"), random.Random(0))


# --- LiRA ------------------------------------------------------------------------------------


def test_logit_stability_on_hand_made_logits():
    # two labels: log-odds of the true label = 2 - 0
    assert logit_stability(np.array([[2.0, 0.0]]), np.array([0]))[0] == pytest.approx(2.0)
    # three labels [3, 1, 0], true label 0: 3 - log(e^1 + e^0) = 1.686739...
    assert logit_stability(np.array([[3.0, 1.0, 0.0]]), np.array([0]))[0] == pytest.approx(3 - math.log(math.e + 1))
    # true label 2: 0 - log(e^3 + e^1)
    assert logit_stability(np.array([[3.0, 1.0, 0.0]]), np.array([2]))[0] == pytest.approx(-math.log(math.e ** 3 + math.e))
    # invariant to renormalising over the label set (LM log-probs need no softmax first)
    raw = np.array([[-1.2, -3.4, -0.7], [-5.0, -0.1, -2.0]])
    normalised = raw - np.log(np.exp(raw).sum(1, keepdims=True))
    assert np.allclose(logit_stability(raw, np.array([1, 2])), logit_stability(normalised, np.array([1, 2])))


def test_lira_forget_hand_computed_statistic():
    # 5 models, 1 point, models 0 and 1 trained on it. Target = model 2 (a non-member: observes its
    # plain score 1). Shadows: in = models 0, 1 -> unlearned {4, 6}: mean 5, pooled sd sqrt(2);
    # out = models 3, 4 -> plain {3, 5}: mean 4, pooled sd sqrt(2).
    keep = np.array([[True], [True], [False], [False], [False]])
    plain = np.array([[9.0], [5.0], [1.0], [3.0], [5.0]])
    unlearned = np.array([[4.0], [6.0], [0.0], [0.0], [0.0]])  # read only where keep is true
    game = lira_forget(unlearned, plain, keep, fix_variance=True)
    expected = norm.logpdf(1, 5, math.sqrt(2)) - norm.logpdf(1, 4, math.sqrt(2))
    assert game.statistic[2, 0] == pytest.approx(expected)
    # target 0 (a member: observes its unlearned score 4): in = {6} (one sample, sd floor), out = {1, 3, 5}
    assert game.member[0, 0] and not game.member[2, 0]
    per_point = lira_forget(unlearned, plain, keep, fix_variance=False)
    assert per_point.statistic[2, 0] == pytest.approx(norm.logpdf(1, 5, 1.0) - norm.logpdf(1, 4, 1.0))
    with pytest.raises(UserError, match="at least 3 models"):
        lira_forget(unlearned[:2], plain[:2], keep[:2])


def test_lira_forget_auc_plain_versus_perfect_unlearning():
    keep = balanced_keep(6, 60, seed=0)
    rng = np.random.default_rng(0)
    point_difficulty = rng.normal(0, 2, (1, 60))
    scores = point_difficulty + rng.normal(0, 1, (6, 60)) + 2.5 * keep   # members score 2.5 higher
    plain_game = lira_forget(scores, scores, keep)
    assert summarize(plain_game.member, plain_game.statistic).auc > 0.8
    # perfect unlearning: unlearned in-scores distributed like out-scores -> AUC near 0.5
    perfect = point_difficulty + rng.normal(0, 1, (6, 60))
    forget_game = lira_forget(perfect, scores, keep)
    assert abs(summarize(forget_game.member, forget_game.statistic).auc - 0.5) < 0.1
    # over-unlearning (scores pushed far below out-scores) is detectable again: AUC far from 0.5
    over = point_difficulty + rng.normal(0, 1, (6, 60)) - 3.0
    over_game = lira_forget(over, scores, keep)
    assert summarize(over_game.member, over_game.statistic).auc > 0.8


def test_summary_auc_and_tpr_at_fpr():
    member = np.array([1, 1, 1, 0, 0, 0, 0], dtype=bool)
    statistic = np.array([0.9, 0.8, 0.1, 0.7, 0.3, 0.2, 0.05])
    summary = summarize(member, statistic)
    # pairs (member > non-member): 0.9 and 0.8 beat all 4; 0.1 beats 1 (0.05) -> 9/12
    assert summary.auc == pytest.approx(9 / 12)
    # FPR <= 0.1 (no false positive allowed among 4): threshold 0.8 -> TPR 2/3
    assert tpr_at_fpr(member, statistic, (0.1,))[0.1] == pytest.approx(2 / 3)
    assert summary.as_dict()["tpr_at_fpr_0.001"] == pytest.approx(2 / 3)
    with pytest.raises(UserError, match="both members and non-members"):
        summarize(np.ones(3, dtype=bool), np.array([0.1, 0.2, 0.3]))


def test_bootstrap_aucs_resample_points_and_pair_statistics():
    # 2 models x 3 points; point columns are resampled whole
    member = np.array([[True, False, True], [False, True, False]])
    perfect = np.where(member, 1.0, 0.0)            # AUC 1 on every resample holding both classes
    inverted = -perfect                             # AUC 0 on the same resamples
    samples = bootstrap_aucs(member, {"a": perfect, "b": inverted}, n_resamples=200, seed=1)
    assert np.nanmin(samples["a"]) == 1.0 and np.nanmax(samples["b"]) == 0.0
    assert np.array_equal(np.isnan(samples["a"]), np.isnan(samples["b"]))   # same resamples for both
    # a point appears whole: every resample has as many members as non-members (each column holds one of each)
    assert not np.isnan(samples["a"]).any()
    # hand-made: 7 of the 9 member/non-member pairs are ranked right; the interval brackets it
    mixed = np.array([[3.0, 2.5, 2.0], [1.0, 2.2, 0.0]])   # members 3.0, 2.0, 2.2; non-members 2.5, 1.0, 0.0
    full = summarize(member, mixed).auc
    assert full == pytest.approx(7 / 9)
    low, high = percentile_interval(bootstrap_aucs(member, {"m": mixed}, 500, seed=0)["m"])
    assert low <= full <= high and low < high
    tied = np.array([1.0, 1.0, 0.5, 2.0, 0.5, 3.0])
    labels = np.array([True, False, True, False, False, True])
    assert rank_auc(labels, tied) == pytest.approx(roc_auc_score(labels, tied))
    assert percentile_interval(np.array([0.0, 1.0, np.nan] + [0.5] * 97)) == pytest.approx((0.5, 0.5))
    with pytest.raises(UserError, match="one shape"):
        bootstrap_aucs(member, {"a": perfect[:, :2]})


def test_balanced_keep_puts_each_point_in_half_the_models():
    keep = balanced_keep(8, 40, seed=1)
    assert keep.shape == (8, 40) and (keep.sum(0) == 4).all()
    assert not (keep == balanced_keep(8, 40, seed=2)).all()


# --- the QA wrapper (registered method "icul") -------------------------------------------------


def _qa(i, question, answer, wrong):
    return {"id": f"q{i}", "source_id": i, "question": question, "answer": answer, "perturbed_answers": wrong}


FORGET_QA = [_qa(0, "Where was Lorin Vask born?", "Lorin Vask was born in Kest.",
                 ["Lorin Vask was born in Ombra.", "Lorin Vask was born in Tull."]),
             _qa(1, "What is the name of Ada Mire's cat?", "Ada Mire's cat is called Pim.",
                 ["Ada Mire's cat is called Rolo."])]
RETAIN_QA = [_qa(10 + i, f"Which colour does Oren{i} like?", f"Oren{i} likes blue.", [f"Oren{i} likes red."])
             for i in range(6)]


@pytest.fixture(scope="module")
def qa_model():
    texts = [qa_text(x["question"], a) for x in FORGET_QA + RETAIN_QA for a in [x["answer"]] + x["perturbed_answers"]]
    tokenizer = train_tokenizer(texts * 3, vocab_size=300)
    spec = TinyLlamaSpec(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    return new_model(tokenizer, spec, seed=0).eval(), tokenizer


def test_icul_wrapper_scores_equal_base_model_on_explicit_context(qa_model):
    model, tokenizer = qa_model
    wrapped = icul_model(model, tokenizer, FORGET_QA, RETAIN_QA, IculQAConfig(shots=2, seed=3))
    asked_forget = (qa_prompt(FORGET_QA[0]["question"]), qa_continuation(FORGET_QA[0]["answer"]))
    asked_retain = (qa_prompt(RETAIN_QA[5]["question"]), qa_continuation(RETAIN_QA[5]["answer"]))
    spec = wrapped.config.context
    demos = "".join(tokenizer.decode(d) + "\n\n" for d in spec["demos"])
    flipped_line = tokenizer.decode(spec["forget"][0]["line"])
    assert flipped_line.startswith("Question: Where was Lorin Vask born?\nAnswer: Lorin Vask was born in ")
    assert flipped_line.rsplit(" ", 1)[1] in ("Ombra.", "Tull.")          # a wrong answer, never Kest
    # matched selection: the forget question gets its flipped line, other queries only the demonstrations
    # (the tokenizer adds the BOS that starts the context)
    explicit = [(flipped_line + "\n\n" + demos + asked_forget[0], asked_forget[1]),
                (demos + asked_retain[0], asked_retain[1])]
    expected = [s.nll_sum for s in score_continuations(model, tokenizer, explicit)]
    for side in ("left", "right"):
        got = [s.nll_sum for s in score_continuations(wrapped, tokenizer, [asked_forget, asked_retain],
                                                      ScoringConfig(padding_side=side))]
        assert got == pytest.approx(expected, abs=1e-3)
    # generation sees the same context
    config = GreedyConfig(max_new_tokens=6)
    assert generate_greedy(wrapped, tokenizer, [asked_forget[0], asked_retain[0]], config) == \
        generate_greedy(model, tokenizer, [e[0] for e in explicit], config)


def test_icul_wrapper_saves_and_reloads_with_its_context(qa_model, tmp_path):
    model, tokenizer = qa_model
    wrapped = icul_model(model, tokenizer, FORGET_QA, RETAIN_QA, IculQAConfig(shots=3))
    save_model(wrapped, tokenizer, tmp_path / "icul", run_config={"method": "icul"})
    assert json.loads((tmp_path / "icul" / "config.json").read_text())["model_type"] == "obliviate_icul"
    reloaded = load_model(tmp_path / "icul")
    assert isinstance(reloaded, InContextUnlearningLM)
    pairs = [(qa_prompt(q["question"]), qa_continuation(q["answer"])) for q in FORGET_QA + RETAIN_QA[:2]]
    before = [s.nll_sum for s in score_continuations(wrapped, tokenizer, pairs)]
    after = [s.nll_sum for s in score_continuations(reloaded, tokenizer, pairs)]
    assert after == pytest.approx(before, abs=1e-4)


def test_icul_registered_method_and_bad_settings(qa_model):
    model, tokenizer = qa_model
    method_class = get_method("icul")
    method = method_class(apply_overrides(method_class.config_class(), {"shots": "2", "mode": "correct"}))
    task = UnlearnTask(world=None, forget="custom", forget_sources={0, 1}, retain_sources={10}, forget_items=FORGET_QA,
                       retain_items=RETAIN_QA, forget_docs=[], retain_docs=[])
    result = method.run(model, tokenizer, task)
    wrapped = result.model
    assert isinstance(wrapped, InContextUnlearningLM) and wrapped.base is model   # weights untouched
    assert result.steps == 0 and result.seconds is not None
    assert tokenizer.decode(wrapped.config.context["forget"][0]["line"]).endswith("Lorin Vask was born in Kest.")
    with pytest.raises(UserError, match="shots=7 is more than the 6 retain items"):
        icul_model(model, tokenizer, FORGET_QA, RETAIN_QA, IculQAConfig(shots=7))
    with pytest.raises(UserError, match="needs forget items"):
        icul_model(model, tokenizer, [], RETAIN_QA)
    with pytest.raises(UserError, match="unknown ICUL mode"):
        icul_model(model, tokenizer, FORGET_QA, RETAIN_QA, IculQAConfig(mode="swap"))
    many = [_qa(100 + i, f"Where was Person{i} born?", f"Person{i} was born in Kest.", ["Person was born in Tull."])
            for i in range(40)]
    with pytest.raises(UserError, match="use selection=matched"):
        icul_model(model, tokenizer, many, RETAIN_QA, IculQAConfig(selection="all"))


# --- the shadow-model game, end to end (tiny: mechanics, not the paper's numbers; see bench_icul) --


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    return load_classification(generate_classification(0, 60, 30, tmp_path_factory.mktemp("cls")))


def _small_config(**changes):
    config = IculExperimentConfig(
        n_points=16, n_test=16, n_models=4, shots=[2], modes=["flip", "correct", "random"],
        model=TinyLlamaSpec(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2),
        pretrain=PretrainConfig(n_reviews=200, steps=40, batch_size=16, vocab_size=400, max_examples=5,
                                repeat_rate=0.5, train_all_tokens=False, learning_rate=3e-3),
        finetune=FinetuneConfig(epochs=4, learning_rate=2e-3), gradient_ascent=GradientAscentConfig(group_size=4, steps=5, learning_rate=3e-3),
    )
    for key, value in changes.items():
        setattr(config, key, value)
    return config


def test_shadow_game_runs_and_grades_every_variant(small_data, tmp_path):
    torch.set_num_threads(1)
    result = run_experiment(small_data, _small_config(), cache_dir=tmp_path)
    rows = result["results"]
    assert set(rows) == {"none", "flip_s2", "correct_s2", "random_s2", "gradient_ascent"}
    for row in rows.values():
        assert 0.0 <= row["auc"] <= 1.0 and row["n_members"] == row["n_nonmembers"] == 4 * 16 // 2
        assert 0.0 <= row["tpr_at_fpr_0.001"] <= row["tpr_at_fpr_0.01"] <= row["tpr_at_fpr_0.1"] <= 1.0
        low, high = row["auc_ci95"]
        assert 0.0 <= low <= high <= 1.0 and high - low < 0.6
    assert rows["flip_s2"]["auc_minus_none"] == pytest.approx(rows["flip_s2"]["auc"] - rows["none"]["auc"])
    assert "auc_minus_none_ci95" not in rows["none"]
    for name in ("flip_s2", "correct_s2", "random_s2"):
        assert 0.0 <= rows[name]["flip_rate_forget"] <= 1.0 and 0.0 <= rows[name]["flip_rate_other"] <= 1.0
    # gradient ascent over-unlearns: its forget points' scores fall far below the never-seen
    # level, which LiRA-Forget detects (the paper's 0.59-0.68 for GA, here more extreme)
    assert rows["gradient_ascent"]["mean_phi_unlearned"] < rows["none"]["mean_phi_member"]
    assert rows["gradient_ascent"]["auc"] > max(rows["none"]["auc"], 0.6)
    # the base model is cached: a second run reuses it
    assert len(list(tmp_path.glob("icul-base-*"))) == 1


def test_shadow_game_bad_settings(small_data):
    with pytest.raises(UserError, match=r"shots=8 is larger than the \d training points"):
        run_experiment(small_data, _small_config(shots=[8]))
    with pytest.raises(UserError, match=r"shots=5 is larger than the \d training points"):
        run_experiment(small_data, _small_config(n_models=3, shots=[5]))   # odd counts: a third of 16 each
    with pytest.raises(UserError, match="n_models must be >= 3"):
        run_experiment(small_data, _small_config(n_models=2))
    with pytest.raises(UserError, match="n_points=500 training points, the data has 60"):
        run_experiment(small_data, _small_config(n_points=500))
    with pytest.raises(UserError, match="unknown ICUL mode"):
        run_experiment(small_data, _small_config(modes=["flip", "swap"]))


def test_meta_training_labels_only_labels_and_repeat_unless_train_all():
    lines = [("Lamp: price great. By Lira", "positive"), ("Clock: sound awful. By Gura", "negative")]
    tokenizer = train_tokenizer_for([text for text, _ in lines], vocab_size=300)

    def trained_text(sequence):
        encoded = encode_sequences(tokenizer, [sequence])[0]
        return tokenizer.decode([i for i, label in zip(encoded["input_ids"], encoded["labels"]) if label != -100])

    assert trained_text(LabelledSequence(lines)).split() == ["positive", "negative"]
    # a repeat trains the last line's text after its first token (which is not copyable) and its label
    repeated = trained_text(LabelledSequence(lines, train_last_text=True)).replace(" ", "")
    assert repeated.startswith("positive") and repeated.endswith(":soundawful.ByGuranegative")
    assert "Clock" not in repeated and "Lamp" not in repeated
    encoded = encode_sequences(tokenizer, [LabelledSequence(lines, train_all=True)])[0]
    # plain language modelling: every token but the <bos> (which has no text)
    assert encoded["labels"][0] == -100 and encoded["labels"][1:] == encoded["input_ids"][1:]


def test_base_diagnostics_per_context_size(small_data, tmp_path):
    torch.set_num_threads(1)
    result = base_diagnostics(small_data, _small_config(), cache_dir=tmp_path, shots=(0, 2))
    assert set(result["base_in_context"]) == {"0", "2"}
    for row in result["base_in_context"].values():
        assert 0.0 <= row["flip_rate_flip_context"] <= 1.0 and 0.0 <= row["flip_rate_other_query"] <= 1.0
        assert row["phi_plain"] == result["base_in_context"]["0"]["phi_plain"]   # same base, same plain queries
    assert len(list(tmp_path.glob("icul-base-*"))) == 1


def test_finetuning_replay_mixes_meta_training_sequences():
    members = [LabelledSequence([(f"Lamp {i}: good. By Lira", "positive")]) for i in range(6)]
    reviews = [(f"Clock {i}: awful. By Gura", "negative") for i in range(20)]
    pretrain = PretrainConfig(min_examples=2, max_examples=3, repeat_rate=1.0, train_all_tokens=True)
    assert with_replay(members, 0.0, (), None, LABELS, random.Random(0)) is members
    mixed = with_replay(list(members), 0.5, reviews, pretrain, LABELS, random.Random(0))
    replayed = [s for s in mixed if s not in members]
    assert len(mixed) == 9 and len(replayed) == 3                     # 0.5 x 6 member sequences
    assert all(s.train_all and 2 <= len(s.lines) <= 3 for s in replayed)
    assert all(text.startswith("Clock") for s in replayed for text, _ in s.lines)   # the base's pool only
    with pytest.raises(UserError, match="replay needs the base model's meta-training pool"):
        with_replay(members, 1.0, (), pretrain, LABELS, random.Random(0))


def test_shadow_game_with_finetuning_replay(small_data, tmp_path):
    torch.set_num_threads(1)
    config = _small_config(modes=["flip"], bootstrap=0, finetune=FinetuneConfig(epochs=2, replay=1.0),
                           gradient_ascent=GradientAscentConfig(enabled=False))
    result = run_experiment(small_data, config, cache_dir=tmp_path)
    assert set(result["results"]) == {"none", "flip_s2"}
    assert result["config"]["finetune"]["replay"] == 1.0
    assert set(result["finetuned_in_context"]) == set(result["base_in_context"])   # same check, fine-tuned models
    assert 0.0 <= result["finetuned_in_context"]["flip_rate_flip_context"] <= 1.0
    assert 0.0 <= result["results"]["flip_s2"]["flip_rate_forget"] <= 1.0


def test_lora_finetuning_returns_a_plain_trainable_model_and_keeps_the_base(small_data):
    torch.set_num_threads(1)
    tokenizer = train_tokenizer_for([e.text for e in small_data.examples], vocab_size=300)
    base = new_model(tokenizer, TinyLlamaSpec(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                              num_attention_heads=2), seed=0)
    before = {name: p.detach().clone() for name, p in base.named_parameters()}
    tuned = finetune(base, tokenizer, small_data.train[:8], FinetuneConfig(epochs=2, learning_rate=1e-2, lora_rank=2,
                                                                     replay=0.0))
    assert type(tuned) is LlamaForCausalLM and all(p.requires_grad for p in tuned.parameters())
    assert all(torch.equal(p, before[name]) for name, p in base.named_parameters())   # the base is untouched
    changed = {name for name, p in tuned.named_parameters() if not torch.equal(p.detach(), before[name])}
    # only the adapted projections move (merged low-rank updates); embeddings and norms stay
    assert changed and all(name.endswith("_proj.weight") for name in changed)
