"""Hand-computed values of the shared unlearning losses (obliviate.train.losses)."""

from __future__ import annotations

import math

import pytest
import torch

from obliviate.train.losses import (
    dpo_loss,
    kl_to_reference,
    masked_mse,
    nll_loss,
    npo_loss,
    sequence_logprobs,
    simnpo_loss,
)

LN3 = math.log(3.0)


def logsigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def two_token_logits() -> torch.Tensor:
    """Vocabulary of 2. Position 0: p = (1/4, 3/4); position 1: (1/2, 1/2); position 2: anything."""
    return torch.tensor([[[0.0, LN3], [0.0, 0.0], [5.0, -5.0]]])


def test_sequence_logprobs_sums_only_labelled_next_tokens():
    logits = two_token_logits().repeat(3, 1, 1)
    labels = torch.tensor([
        [-100, 1, 0],        # position 0 predicts 1 (3/4), position 1 predicts 0 (1/2)
        [-100, 0, -100],     # only position 0 predicts 0 (1/4); the trailing -100 is padding
        [-100, -100, -100],  # nothing scored
    ])
    logp, counts = sequence_logprobs(logits, labels)
    assert counts.tolist() == [2, 1, 0]
    assert logp[0].item() == pytest.approx(math.log(0.75) + math.log(0.5), abs=1e-6)
    assert logp[1].item() == pytest.approx(math.log(0.25), abs=1e-6)
    assert logp[2].item() == 0.0
    # the first label never counts (nothing predicts it), whatever its value
    labels_with_first = labels.clone()
    labels_with_first[0, 0] = 1
    assert sequence_logprobs(logits, labels_with_first)[0][0].item() == pytest.approx(logp[0].item())


def test_nll_loss_is_the_token_mean_over_the_batch():
    logits = two_token_logits().repeat(2, 1, 1)
    labels = torch.tensor([[-100, 1, 0], [-100, 0, -100]])
    expected = -(math.log(0.75) + math.log(0.5) + math.log(0.25)) / 3
    assert nll_loss(logits, labels).item() == pytest.approx(expected, abs=1e-6)


def test_npo_loss_matches_the_formula_with_beta_0_1():
    logp = torch.tensor([-2.0, -5.0], requires_grad=True)
    ref = torch.tensor([-1.0, -5.0])
    loss = npo_loss(logp, ref, beta=0.1)
    # -(2/b) * mean(logsigmoid(-b * (logp - ref))) with b = 0.1: arguments 0.1 and 0
    expected = -(2 / 0.1) * (logsigmoid(0.1) + math.log(0.5)) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    assert expected == pytest.approx(13.3754, abs=1e-3)
    # d loss / d logp_i = (2/n) * sigmoid(b * (logp_i - ref_i)): at logp = ref it is 1/n, as gradient ascent
    loss.backward()
    sigmoid = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert logp.grad.tolist() == pytest.approx([sigmoid(-0.1), 0.5], abs=1e-6)


def test_npo_at_the_reference_is_2_ln2_over_beta():
    same = torch.tensor([-3.0, -7.0, -1.0])
    assert npo_loss(same, same, beta=0.1).item() == pytest.approx(20 * math.log(2), abs=1e-5)


def test_simnpo_loss_is_length_normalised_without_reference():
    logp = torch.tensor([-4.0, -6.0])
    lengths = torch.tensor([2, 3])
    # both average log-probs are -2: -(2/2.5) * logsigmoid(2.5 * 2 - gamma)
    assert simnpo_loss(logp, lengths, beta=2.5, gamma=0.0).item() == pytest.approx(-0.8 * logsigmoid(5.0), abs=1e-7)
    assert simnpo_loss(logp, lengths, beta=2.5, gamma=1.0).item() == pytest.approx(-0.8 * logsigmoid(4.0), abs=1e-7)
    assert simnpo_loss(logp, lengths).item() == pytest.approx(0.0053723, abs=1e-6)


def test_dpo_loss_on_hand_log_probs():
    # margin = (lp_c - ref_c) - (lp_r - ref_r) = (-3 + 4) - (-2 + 1) = 2
    loss = dpo_loss(torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-4.0]), torch.tensor([-1.0]), beta=0.1)
    assert loss.item() == pytest.approx(-logsigmoid(0.2), abs=1e-6)
    assert loss.item() == pytest.approx(0.598139, abs=1e-5)


def test_kl_to_reference_is_kl_ref_to_model_over_masked_positions():
    model_logits = torch.tensor([[[0.0, 0.0], [3.0, -2.0]]])   # uniform at position 0
    ref_logits = torch.tensor([[[0.0, LN3], [-1.0, 4.0]]])     # (1/4, 3/4) at position 0
    mask = torch.tensor([[1, 0]])                              # position 1 is padding
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert kl_to_reference(model_logits, ref_logits, mask).item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.130812, abs=1e-5)
    assert kl_to_reference(ref_logits, ref_logits, torch.ones(1, 2)).item() == pytest.approx(0.0, abs=1e-7)


def test_masked_mse_averages_over_dimensions_then_masked_positions():
    hidden = torch.tensor([[[1.0, 3.0], [10.0, 10.0]]])
    target = torch.tensor([[[0.0, 0.0], [0.0, 0.0]]])
    assert masked_mse(hidden, target, torch.tensor([[1, 0]])).item() == pytest.approx(5.0)
    assert masked_mse(hidden, target, torch.tensor([[1, 1]])).item() == pytest.approx((5.0 + 100.0) / 2)
