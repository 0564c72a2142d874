"""open-unlearning's other six methods (UNDIAL, AltPO, SatImp, WGA, CE-U, PDU): each loss on
hand-computed values, each method on the micro world with its defaults, bad settings refused."""

from __future__ import annotations

import json
import math

import pytest
import torch

from obliviate.config import apply_overrides
from obliviate.errors import UserError
from obliviate.eval.accuracy import answer_accuracy
from obliviate.methods.altpo import AltPOConfig, altpo_loss, attribute_key, load_alternates, world_alternates
from obliviate.methods.ce_u import CEUConfig, ce_u_loss
from obliviate.methods.pdu import PDUConfig, dual_update, logit_flattening_loss
from obliviate.methods.registry import get_method
from obliviate.methods.satimp import SatImpConfig, satimp_loss
from obliviate.methods.undial import UNDIALConfig, undial_loss
from obliviate.methods.wga import WGAConfig, wga_loss
from obliviate.models.loading import load_model_and_tokenizer
from obliviate.train.losses import nll_loss
from obliviate.workflows.unlearn import run_unlearning
from obliviate.world import load_world

E = math.e
IGNORE = -100


def softmax(row: list[float]) -> list[float]:
    exps = [math.exp(v) for v in row]
    return [v / sum(exps) for v in exps]


# Two scored tokens: position 0 predicts token 1 from logits (2, 0, 0), position 1 predicts
# token 1 from (0, 1, 0); position 2's logits are never scored (its label is the last one).
TWO_TOKEN_LOGITS = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [9.0, -9.0, 5.0]]])
TWO_TOKEN_LABELS = torch.tensor([[IGNORE, 1, 1]])
P0, P1 = 1 / (E ** 2 + 2), E / (E + 2)      # the two tokens' probabilities


# -- losses on hand-computed values --------------------------------------------------------


def test_wga_loss_weights_each_token_by_its_probability():
    expected = (P0 * math.log(P0) + P1 * math.log(P1)) / 2
    assert wga_loss(TWO_TOKEN_LOGITS, TWO_TOKEN_LABELS, beta=1.0).item() == pytest.approx(expected, rel=1e-5)
    expected_b2 = (P0 ** 2 * math.log(P0) + P1 ** 2 * math.log(P1)) / 2
    assert wga_loss(TWO_TOKEN_LOGITS, TWO_TOKEN_LABELS, beta=2.0).item() == pytest.approx(expected_b2, rel=1e-5)
    # beta 0: every weight 1, plain gradient ascent
    assert wga_loss(TWO_TOKEN_LOGITS, TWO_TOKEN_LABELS, beta=0.0).item() == pytest.approx(
        -nll_loss(TWO_TOKEN_LOGITS, TWO_TOKEN_LABELS).item(), rel=1e-6)


def test_wga_weight_is_detached():
    # one token, logits (0, 0), target 0: p = 1/2; d/dz of w * log p with w = p held fixed
    # is w * (onehot - softmax) = 0.5 * (0.5, -0.5)
    logits = torch.zeros(1, 2, 2, requires_grad=True)
    wga_loss(logits, torch.tensor([[IGNORE, 0]]), beta=1.0).backward()
    assert logits.grad[0, 0].tolist() == pytest.approx([0.25, -0.25])


def test_satimp_loss_weights_saturation_and_importance():
    def weight(p):
        return p ** 5 * (1 - p) ** 1

    expected = (weight(P0) * math.log(P0) + weight(P1) * math.log(P1)) / 2
    value = satimp_loss(TWO_TOKEN_LOGITS, TWO_TOKEN_LABELS, beta1=5.0, beta2=1.0).item()
    assert value == pytest.approx(expected, rel=1e-5)
    # beta1 = beta2 = 0 is plain gradient ascent again
    assert satimp_loss(TWO_TOKEN_LOGITS, TWO_TOKEN_LABELS, beta1=0.0, beta2=0.0).item() == pytest.approx(
        -nll_loss(TWO_TOKEN_LOGITS, TWO_TOKEN_LABELS).item(), rel=1e-6)
    # detached: one token at p = 1/2 has w = 0.5^5 * 0.5, gradient w * (0.5, -0.5)
    logits = torch.zeros(1, 2, 2, requires_grad=True)
    satimp_loss(logits, torch.tensor([[IGNORE, 0]])).backward()
    assert logits.grad[0, 0].tolist() == pytest.approx([0.5 ** 7, -0.5 ** 7])


def test_undial_loss_distils_toward_the_adjusted_teacher():
    # teacher (3, 1, 0), true token 0, beta 2 -> adjusted (1, 1, 0), target (e, e, 1)/(2e + 1).
    # student (1, 0, 0): log q = (1, 0, 0) - ln(e + 2), so CE = ln(e + 2) - target_0.
    student = torch.tensor([[[1.0, 0.0, 0.0], [5.0, 5.0, 5.0]]])
    teacher = torch.tensor([[[3.0, 1.0, 0.0], [0.0, 0.0, 0.0]]])
    labels = torch.tensor([[IGNORE, 0]])
    expected = math.log(E + 2) - E / (2 * E + 1)
    assert undial_loss(student, teacher, labels, beta=2.0).item() == pytest.approx(expected, rel=1e-5)
    # beta 0: plain self-distillation; the student equal to the teacher scores its entropy
    entropy = -sum(p * math.log(p) for p in softmax([3.0, 1.0, 0.0]))
    assert undial_loss(teacher, teacher, labels, beta=0.0).item() == pytest.approx(entropy, rel=1e-5)
    # an unlabelled position does not count, whatever its logits
    padded = torch.tensor([[IGNORE, 0, IGNORE]])
    assert undial_loss(torch.cat([student, student[:, :1] * 7], 1), torch.cat([teacher, teacher[:, :1]], 1),
                       padded, beta=2.0).item() == pytest.approx(expected, rel=1e-5)


def test_ce_u_loss_targets_the_distribution_without_the_true_token():
    # labels: prompt, then answer tokens 2 and 1. Position 0 (logits (0, 0, 3)) predicts token 2,
    # position 1 (logits (1, 2, 0)) token 1; the first answer token is skipped by default.
    logits = torch.tensor([[[0.0, 0.0, 3.0], [1.0, 2.0, 0.0], [4.0, 4.0, 4.0]]])
    labels = torch.tensor([[IGNORE, 2, 1]])
    # position 1: q = softmax(1, -inf, 0) = (e, 0, 1)/(e + 1); CE = ln(1 + e + e^2) - q_0
    second = math.log(1 + E + E ** 2) - E / (E + 1)
    # position 0: q = (1/2, 1/2, 0); CE = ln(2 + e^3)
    first = math.log(2 + E ** 3)
    assert ce_u_loss(logits, labels, ignore_first=1).item() == pytest.approx(second, rel=1e-5)
    assert ce_u_loss(logits, labels, ignore_first=0).item() == pytest.approx((first + second) / 2, rel=1e-5)


def test_ce_u_gradient_is_p_minus_q():
    # the target is detached: d CE / d z = softmax(z) - q
    logits = torch.tensor([[[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]]], requires_grad=True)
    ce_u_loss(logits, torch.tensor([[IGNORE, 1]]), ignore_first=0).backward()
    p = softmax([1.0, 2.0, 0.0])
    q = [E / (E + 1), 0.0, 1 / (E + 1)]
    assert logits.grad[0, 0].tolist() == pytest.approx([a - b for a, b in zip(p, q)], rel=1e-5)


def test_pdu_flattening_loss_and_dual_step():
    # positions predicting labelled tokens: (4, 0, 0, 0) -> (4 - 1)^2 = 9, (1, 1, 1, 1) -> 0;
    # the last position predicts nothing
    logits = torch.tensor([[[4.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [8.0, 0.0, 0.0, 0.0]]])
    assert logit_flattening_loss(logits, torch.tensor([[IGNORE, 0, 2]])).item() == pytest.approx(4.5)
    # the prompt's last position predicts the first answer token: it counts, position 1's does not
    assert logit_flattening_loss(logits, torch.tensor([[IGNORE, 0, IGNORE]])).item() == pytest.approx(9.0)
    assert dual_update(100.0, 0.1 - 0.3, 5.0) == pytest.approx(99.0)
    assert dual_update(0.5, -0.2, 5.0) == 0.0         # projected onto lam >= 0
    assert dual_update(2.0, 0.4, 5.0) == pytest.approx(4.0)


def test_altpo_loss_is_scaled_dpo_on_the_alternate():
    # margin = (lp_alt - ref_alt) - (lp_f - ref_f) = (-2 + 3) - (-1 + 0.5) = 1.5
    value = altpo_loss(torch.tensor([-2.0]), torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-0.5]), beta=0.1)
    assert value.item() == pytest.approx((2 / 0.1) * math.log(1 + math.exp(-0.1 * 1.5)), rel=1e-6)
    # at the reference (margin 0) the loss is (2/b) ln 2 for every beta
    zero = torch.tensor([-1.0])
    assert altpo_loss(zero, zero, zero, zero, beta=0.5).item() == pytest.approx(4 * math.log(2), rel=1e-6)


# -- AltPO's alternates --------------------------------------------------------------------


def qa(item_id: str, answer: str, value: str, perturbed: list[str] | None = None) -> dict:
    return {"id": item_id, "answer": answer, "value": value, "perturbed_answers": perturbed or []}


def test_world_alternates_swap_the_fact_for_same_attribute_values():
    item = qa("author-1-birth_city", "Ana was born in Xar.", "Xar", ["The birthplace of Ana is Yul."])
    world_qa = [item,
                qa("author-2-birth_city", "Bo was born in Yul.", "Yul"),      # a perturbed answer's value: left out
                qa("author-3-birth_city", "Cy was born in Zed.", "Zed"),
                qa("author-4-birth_city", "Di was born in Xar.", "Xar"),      # the true value: left out
                qa("author-5-genre", "Ed writes Wol.", "Wol")]                # another attribute
    assert attribute_key("author-12-birth_city") == attribute_key("author-3-birth_city") == "author-#-birth_city"
    assert world_alternates(item, world_qa, 5, seed=0) == ["Ana was born in Zed."]
    world_qa.append(qa("author-6-birth_city", "Fa was born in Vos.", "Vos"))
    assert sorted(world_alternates(item, world_qa, 5, seed=0)) == ["Ana was born in Vos.", "Ana was born in Zed."]
    assert len(world_alternates(item, world_qa, 1, seed=0)) == 1
    # no value in the answer (e.g. a text world's item): no alternates
    assert world_alternates(qa("doc-1", "Something.", ""), world_qa, 5, seed=0) == []


def test_alternates_file_is_checked(tmp_path):
    good = tmp_path / "alts.jsonl"
    good.write_text(json.dumps({"id": "a-1", "alternates": ["One.", " Two. "]}) + "\n\n")
    assert load_alternates(str(good)) == {"a-1": ["One.", "Two."]}
    bad = tmp_path / "bad.jsonl"
    for text, fragment in [("{not json", "not JSON"), (json.dumps({"id": "a-1", "alternates": []}), "expected"),
                           ("", "holds no alternates")]:
        bad.write_text(text)
        with pytest.raises(UserError, match=fragment):
            load_alternates(str(bad))
    with pytest.raises(UserError, match="not found"):
        load_alternates(str(tmp_path / "missing.jsonl"))


# -- bad settings ----------------------------------------------------------------------------

# method -> a bad --set value and a fragment of its error message
BAD_SETTINGS = {
    "undial": ("beta=-1", "beta must be >= 0"),
    "altpo": ("beta=0", "beta must be > 0"),
    "satimp": ("beta1=-5", "beta1 must be >= 0"),
    "wga": ("beta=-1", "beta must be >= 0"),
    "ce_u": ("ignore_first_n_answer_tokens=-1", "ignore_first_n_answer_tokens must be >= 0"),
    "pdu": ("retain_loss_eps=-0.1", "retain_loss_eps"),
}


@pytest.mark.parametrize("config_class, overrides, fragment", [
    (UNDIALConfig, {"retain_weight": "-1"}, "retain_weight must be >= 0"),
    (AltPOConfig, {"num_alternates": "0"}, "num_alternates must be at least 1"),
    (SatImpConfig, {"beta2": "-1"}, "beta2 must be >= 0"),
    (SatImpConfig, {"forget_weight": "nan"}, "forget_weight must be >= 0"),
    (WGAConfig, {"forget_weight": "-0.5"}, "forget_weight must be >= 0"),
    (CEUConfig, {"forget_weight": "-1"}, "forget_weight must be >= 0"),
    (PDUConfig, {"dual_step_size": "-1"}, "dual_step_size must be >= 0"),
    (PDUConfig, {"retain_loss": "none"}, "retain_loss must be nll or kl"),
    (PDUConfig, {"dual_warmup_steps": "-2"}, "dual_warmup_steps must be >= 0"),
])
def test_bad_settings_are_refused_when_the_config_is_built(config_class, overrides, fragment):
    with pytest.raises(UserError, match=fragment):
        apply_overrides(config_class(), overrides)


@pytest.mark.parametrize("method", sorted(BAD_SETTINGS))
def test_a_config_changed_after_construction_is_refused_before_training(method):
    method_class = get_method(method)
    config = method_class.config_class()
    key, value = BAD_SETTINGS[method][0].split("=")
    setattr(config, key, type(getattr(config, key))(value))
    with pytest.raises(UserError, match=BAD_SETTINGS[method][1]):
        method_class(config).unlearn(None, None, None)   # refused before it touches model or task


@pytest.mark.parametrize("method", sorted(BAD_SETTINGS))
def test_cli_refuses_bad_settings(method, micro_run, cli, tmp_path):
    setting, fragment = BAD_SETTINGS[method]
    out = tmp_path / "out"
    code, stdout, stderr = cli("unlearn", "--method", method, "--model", micro_run.full_model,
                               "--world", micro_run.world_dir, "--out", out, "--set", setting)
    assert code == 2, (stdout, stderr)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], stderr
    assert not out.exists()


# -- every method on micro, with its defaults ---------------------------------------------

# method -> minimum retain-split unique accuracy after unlearning with the defaults. Measured
# on micro (full model: forget 1.00, retain 0.97), all forgetting to 0.00: wga 0.94,
# satimp 0.99, undial 0.99, ce_u 0.97, pdu 0.96, altpo 0.97.
RETAIN_BOUNDS = {"undial": 0.85, "altpo": 0.85, "satimp": 0.85, "wga": 0.8, "ce_u": 0.85, "pdu": 0.85}


@pytest.fixture(scope="module")
def full_accuracy(micro_run):
    world = load_world(micro_run.world_dir)
    model, tokenizer = load_model_and_tokenizer(micro_run.full_model)
    return (answer_accuracy(model, tokenizer, world.qa_for("forget10", ("unique",))),
            answer_accuracy(model, tokenizer, world.qa_for("retain", ("unique",))))


@pytest.mark.parametrize("method", sorted(RETAIN_BOUNDS))
def test_method_forgets_on_micro(method, micro_run, full_accuracy, tmp_path):
    world = load_world(micro_run.world_dir)
    out = tmp_path / method
    result = run_unlearning(method, micro_run.full_model, micro_run.world_dir, "forget10", out, evaluate=False,
                            overrides={"progress": "false"})
    model, tokenizer = load_model_and_tokenizer(out)
    forget = answer_accuracy(model, tokenizer, world.qa_for("forget10", ("unique",)))
    retain = answer_accuracy(model, tokenizer, world.qa_for("retain", ("unique",)))
    full_forget, full_retain = full_accuracy
    print(f"{method}: forget {full_forget:.2f} -> {forget:.2f}, retain {full_retain:.2f} -> {retain:.2f}")
    assert forget <= full_forget - 0.4, (forget, full_forget)
    assert retain >= RETAIN_BOUNDS[method], retain
    config = get_method(method).config_class()
    assert result["steps"] == config.max_steps
    if method == "pdu":
        check_dual_trajectory(result["history"], config)
    if method == "altpo":
        # micro's forget10 (world v2): 24 questions; 6 have no same-attribute value left once the
        # true and the perturbed answers' values are excluded (small pools), 75 alternates from the world (up to 5 each)
        assert result["report"]["alternates"] == {"file": 0, "world": 75, "refusal": 6}


def check_dual_trajectory(history: list[dict], config: PDUConfig) -> None:
    """The multiplier holds during the warm-up, then takes one projected dual step per batch
    on the logged retain loss: lam_s = max(0, lam_{s-1} + step * (retain_s - eps))."""
    logs = [entry for entry in history if "retain_multiplier" in entry and "retain_loss" in entry]
    assert len(logs) == config.max_steps
    previous = config.retain_weight
    for entry in logs:
        if entry["step"] <= config.dual_warmup_steps:
            expected = config.retain_weight
        else:
            expected = max(0.0, previous + config.dual_step_size * (entry["retain_loss"] - config.retain_loss_eps))
        assert entry["retain_multiplier"] == pytest.approx(expected, abs=1e-3), entry
        previous = entry["retain_multiplier"]
    assert logs[-1]["retain_multiplier"] != config.retain_weight   # it did move
