"""The MIA attacks open-unlearning has beyond the scoring pass: GradNorm and the
reference-based attack, on hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from obliviate.eval.gradnorm import gradient_norms
from obliviate.eval.metrics import mia
from obliviate.eval.retain_reference import RetainReference, reference_attack_rows


@pytest.fixture(scope="module")
def tiny_lm():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "Q": 4, "A": 5, "red": 6, "blue": 7, ":": 8}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                        pad_token="<pad>", unk_token="<unk>")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                         max_position_embeddings=32)).eval()
    return model, tokenizer


def test_gradient_norm_is_the_mean_per_parameter_norm_of_the_answer_loss(tiny_lm):
    model, tokenizer = tiny_lm
    pairs = [("Q :", " A red"), ("Q :", " A blue")]
    # leave a stale gradient and a frozen parameter: the pass must touch neither
    first = next(model.parameters())
    first.grad = torch.full_like(first, 7.0)
    model.lm_head.weight.requires_grad_(False)
    norms = gradient_norms(model, tokenizer, pairs, p=2.0)
    assert torch.equal(first.grad, torch.full_like(first, 7.0))
    assert model.lm_head.weight.requires_grad is False and not model.training
    first.grad = None
    model.lm_head.weight.requires_grad_(True)
    # by hand (open-unlearning's mia/gradnorm.py): mean NLL of the answer tokens, backward,
    # mean over parameters of each gradient's 2-norm
    for (prompt, answer), norm in zip(pairs, norms):
        ids = torch.tensor([tokenizer(prompt + answer)["input_ids"]])
        start = len(tokenizer(prompt)["input_ids"])
        model.zero_grad()
        logits = model(input_ids=ids).logits[0]
        loss = torch.nn.functional.cross_entropy(logits[start - 1:-1], ids[0, start:])
        loss.backward()
        expected = torch.stack([q.grad.norm(p=2) for q in model.parameters() if q.grad is not None]).mean()
        assert norm == pytest.approx(expected.item(), rel=1e-5)
    model.zero_grad(set_to_none=True)
    assert norms[0] != norms[1]
    with pytest.raises(ValueError, match="1, 2 or inf"):
        gradient_norms(model, tokenizer, pairs, p=3.0)


def test_gradnorm_score_orients_small_gradients_as_members():
    # members have the smaller gradient norm: AUC 1 when every member's is below every non-member's
    members = [mia.gradnorm_score(g) for g in (0.1, 0.2)]
    nonmembers = [mia.gradnorm_score(g) for g in (0.5, 0.9)]
    assert mia.auc(members, nonmembers) == 1.0


def test_reference_attack_is_own_loss_below_the_retain_models():
    reference = RetainReference(forget="forget10", world_fingerprint="w", forget_truth_ratio={}, mia_auc={},
                                mia_loss={"forget": {"a": -2.0, "b": -1.0}, "holdout": {"h": -1.5}})
    rows = {"forget": {"a": {"loss": -0.5}, "b": {"loss": -1.2}}, "holdout": {"h": {"loss": -1.4}}}
    assert reference_attack_rows(reference, rows)
    # score = ref_nll - own_nll: a: 2.0 - 0.5, b: 1.0 - 1.2, h: 1.5 - 1.4
    assert [rows["forget"]["a"]["reference"], rows["forget"]["b"]["reference"], rows["holdout"]["h"]["reference"]] \
        == pytest.approx([1.5, -0.2, 0.1])
    assert mia.auc([1.5, -0.2], [0.1]) == 0.5
    # a unit the reference never scored: no reference attack
    rows["holdout"]["z"] = {"loss": -1.0}
    assert not reference_attack_rows(reference, rows)


def test_privleak_is_nan_when_the_retain_model_separates_perfectly():
    assert math.isnan(mia.privleak(0.9, 1.0))
