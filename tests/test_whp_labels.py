"""WHP generic labels on hand-made logits: the formula, the ReLU, alpha=0, forbidden tokens,
soft labels and the collator that aligns labels back onto the original tokens."""

from __future__ import annotations

import math

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from obliviate.errors import UserError
from obliviate.whp.labels import (
    anchor_start_tokens,
    block_generic_logits,
    compute_generic_targets,
    forbid_tokens,
    generic_logits,
    soft_targets,
    unlikelihood_tokens,
)
from obliviate.whp.training import GenericLabelCollator, anchor_unlikelihood, soft_label_loss
from obliviate.whp.translation import TranslatedBlock, translate_document

torch.set_num_threads(1)


def test_formula_on_hand_logits():
    base = torch.tensor([1.0, 2.0, 3.0])
    reinforced = torch.tensor([1.0, 4.0, 0.0])
    # relu(r - b) = [0, 2, 0]  ->  v = b - 5 * [0, 2, 0]
    assert generic_logits(base, reinforced, 5.0).tolist() == [1.0, -8.0, 3.0]


def test_relu_a_logit_that_fell_in_the_reinforced_model_does_not_change_the_label():
    base = torch.tensor([0.0, 1.0, 3.0])
    reinforced = torch.tensor([0.0, 1.0, -10.0])     # the base's favourite fell a lot
    combined = generic_logits(base, reinforced, 5.0)
    assert combined.tolist() == base.tolist()
    assert int(combined.argmax()) == 2
    # without the ReLU the label would not move either way here, but the logit would: 3 + 5*13
    assert (base - 5.0 * (reinforced - base))[2].item() == 68.0


def test_boosted_token_loses_the_label():
    base = torch.tensor([2.0, 1.9, 0.0])
    reinforced = torch.tensor([4.0, 1.9, 0.0])       # reinforcement boosted token 0 by 2
    assert generic_logits(base, reinforced, 1.0).tolist() == pytest.approx([0.0, 1.9, 0.0])
    assert int(generic_logits(base, reinforced, 1.0).argmax()) == 1
    assert int(generic_logits(base, reinforced, 0.0).argmax()) == 0


def test_alpha_zero_gives_the_base_argmax():
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(6, 50, generator=generator)
    reinforced = torch.randn(6, 50, generator=generator) * 3
    assert torch.equal(generic_logits(base, reinforced, 0.0).argmax(-1), base.argmax(-1))
    assert not torch.equal(generic_logits(base, reinforced, 5.0).argmax(-1), base.argmax(-1))


def test_shape_mismatch_is_a_user_error():
    with pytest.raises(UserError, match="vocabulary"):
        generic_logits(torch.zeros(3, 5), torch.zeros(3, 6), 1.0)


def test_forbidden_tokens_get_the_mean_logit():
    logits = torch.tensor([[1.0, -8.0, 3.0], [0.0, 1.0, 2.0]])
    out = forbid_tokens(logits, [[2], []])
    assert out[0].tolist() == pytest.approx([1.0, -8.0, -4.0 / 3.0])
    assert out[1].tolist() == [0.0, 1.0, 2.0]
    assert out.argmax(-1).tolist() == [0, 2]
    assert logits[0, 2].item() == 3.0                 # input untouched


def test_block_logits_use_mapped_positions():
    # original: 4 tokens, an anchor of 2 tokens at positions 1-2 translated into 3 tokens (1-3)
    block = TranslatedBlock(original_ids=[5, 6, 7, 8], translated_ids=[5, 9, 9, 9, 8],
                            position_map=[0, -1, 3, 4], train_mask=[True, False, True, False],
                            forbidden=[[], [], [2], [2]])
    base = torch.arange(5 * 4, dtype=torch.float).reshape(5, 4)          # row t: base logits at translated t
    reinforced = torch.tensor([[0.0, 0.0, 10.0, 0.0], [0.0] * 4, [20.0, 0.0, 0.0, 13.0], [0.0] * 4])
    positions, rows = block_generic_logits(block, base, reinforced, alpha=2.0)
    assert positions == [0, 2]
    # position 0 <- translated 0: base [0,1,2,3], reinforced [0,0,10,0] -> [0,1,2-16,3]
    assert rows[0].tolist() == [0.0, 1.0, -14.0, 3.0]
    # position 2 <- translated 3: base [12,13,14,15], reinforced [20,0,0,13] -> [12-16,13,14,15]; token 2 forbidden
    mean = (-4.0 + 13.0 + 14.0 + 15.0) / 4
    assert rows[1].tolist() == pytest.approx([-4.0, 13.0, mean, 15.0])
    assert rows.argmax(-1).tolist() == [3, 3]


def test_anchor_tokens_are_forbidden_at_every_trained_position():
    block = TranslatedBlock(original_ids=[5, 6, 7, 8], translated_ids=[5, 9, 9, 9, 8],
                            position_map=[0, -1, 3, 4], train_mask=[True, False, True, False],
                            forbidden=[[], [], [2], [2]])
    base = torch.arange(5 * 4, dtype=torch.float).reshape(5, 4)
    reinforced = base[[0, 0, 3, 4]].clone()            # no reinforcement: v_generic = v_base(translated)
    _, rows = block_generic_logits(block, base, reinforced, alpha=5.0, anchor_tokens=[3])
    # token 3 (an anchor's start) was each row's argmax; it now gets the row's mean logit
    assert rows[0].tolist() == pytest.approx([0.0, 1.0, 2.0, 1.5])
    # both forbidden tokens of a row (2: a used translation, 3: an anchor) take the same mean
    assert rows[1].tolist() == pytest.approx([12.0, 13.0, 13.5, 13.5])
    assert int(rows[0].argmax()) == 2


def test_anchor_start_tokens_skip_generic_and_common_first_words():
    words = ["<pad>", "Boujoa", "Anna", "The", "Lantern", "lamp", "the", "Caves", "old", "caves", "of", "Laempe"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>")
    anchors = {"Boujoa": ["Anna"], "The Lantern": ["the lamp"], "Caves of Laempe": ["Caves", "old caves"]}
    # "The" is a common word, "Caves" also starts a generic alternative: only "Boujoa" is forbidden
    assert anchor_start_tokens(tokenizer, anchors) == [1]
    assert anchor_start_tokens(tokenizer, {}) == []


def _word_tokenizer(words):
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>")


@pytest.mark.parametrize("train_repeated", [True, False])
def test_label_predicting_a_repeated_anchor_is_neither_the_anchor_nor_its_translation(train_repeated):
    tok = _word_tokenizer(["<pad>", "Harry", "Jon", "said", "hi", "."])
    pad, harry, jon, said, hi, dot = range(6)
    [block] = translate_document("Harry said hi . Harry said", tok, {"Harry": ["Jon"]},
                                 train_repeated_anchor_predictions=train_repeated)
    # position 3 ('.') predicts the 2nd "Harry"; the base model on the translation predicts "Jon" there,
    # the reinforced model "Harry"; the next best token is "said"
    base = torch.zeros(6, 6)
    base[3] = torch.tensor([0.0, 4.0, 6.0, 3.0, 1.0, 0.0])
    reinforced = base.clone()
    positions, rows = block_generic_logits(block, base, reinforced, alpha=5.0)
    labels = dict(zip(positions, rows.argmax(-1).tolist()))
    if train_repeated:
        assert positions == [0, 1, 2, 3, 4]
        mean = 14.0 / 6                                  # "Harry" and "Jon" both take the row's mean logit
        assert rows[3].tolist() == pytest.approx([0.0, mean, mean, 3.0, 1.0, 0.0])
        assert labels[3] == said
    else:                                                # the paper's rule: the position is not trained
        assert positions == [0, 1, 2, 4] and 3 not in labels


def test_soft_targets_keep_top_k_renormalised():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    ids, probs = soft_targets(logits, 2)
    assert ids.tolist() == [[0, 1]]
    assert probs[0].tolist() == pytest.approx([0.625, 0.375])
    ids, probs = soft_targets(logits, 0)
    assert ids.tolist() == [[0, 1, 2]] and probs[0].tolist() == pytest.approx([0.5, 0.3, 0.2])


def test_soft_label_loss_is_the_kl_divergence():
    model_logits = torch.tensor([[[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]]])
    ids = torch.tensor([[[0, 1, 2], [0, 1, 2]]])
    target = torch.tensor([[[0.2, 0.3, 0.5], [0.9, 0.05, 0.05]]])
    mask = torch.tensor([[1.0, 0.0]])                   # only the first position is trained
    q = torch.softmax(model_logits[0, 0], -1)
    expected = sum(p * math.log(p / qq) for p, qq in zip(target[0, 0].tolist(), q.tolist()))
    assert soft_label_loss(model_logits, ids, target, mask).item() == pytest.approx(expected, rel=1e-5)
    # equal distributions: zero
    same = torch.softmax(model_logits, -1)
    assert soft_label_loss(model_logits, ids, same, torch.ones(1, 2)).item() == pytest.approx(0.0, abs=1e-6)


def test_collator_puts_hard_labels_on_the_next_token():
    collate = GenericLabelCollator(pad_token_id=0)
    batch = collate([{"input_ids": [5, 6, 7, 8], "positions": [0, 2], "hard_labels": [11, 12]},
                     {"input_ids": [5, 6], "positions": [0], "hard_labels": [13]}])
    assert batch["labels"].tolist() == [[-100, 11, -100, 12], [-100, 13, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8], [5, 6, 0, 0]]


def _tiny_llama(vocab: int, seed: int):
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(config).eval()


def test_compute_generic_targets_matches_a_manual_computation():
    base, reinforced = _tiny_llama(40, 0), _tiny_llama(40, 1)
    blocks = [
        TranslatedBlock([1, 2, 3, 4, 5], [1, 9, 9, 3, 4, 5], [0, 2, 3, 4, 5], [True, True, True, True, False],
                        [[], [], [9], [9], [9]]),
        TranslatedBlock([1, 7, 8], [1, 7, 8], [0, 1, 2], [True, True, False], [[], [], []]),
    ]
    for soft in (False, True):
        targets = compute_generic_targets(base, reinforced, blocks, alpha=5.0, soft=soft, soft_top_k=4,
                                          batch_size=2)
        for block, target in zip(blocks, targets):
            with torch.no_grad():
                b = base(torch.tensor([block.translated_ids])).logits[0]
                r = reinforced(torch.tensor([block.original_ids])).logits[0]
            positions = [k for k, t in enumerate(block.train_mask) if t]
            manual = [int(forbid_tokens(generic_logits(b[[block.position_map[k]]], r[[k]], 5.0),
                                        [block.forbidden[k]]).argmax()) for k in positions]
            assert target.positions == positions
            assert target.hard_labels == manual
            assert target.input_ids == block.original_ids
            if soft:
                assert target.soft_ids.shape == (len(positions), 4)
                assert target.soft_ids[:, 0].tolist() == manual
                assert torch.allclose(target.soft_probs.sum(-1), torch.ones(len(positions)))


def test_reinforced_model_with_another_vocabulary_is_a_user_error():
    blocks = [TranslatedBlock([1, 2, 3], [1, 2, 3], [0, 1, 2], [True, True, False], [[], [], []])]
    with pytest.raises(UserError, match="same|share one vocabulary"):
        compute_generic_targets(_tiny_llama(40, 0), _tiny_llama(48, 1), blocks)


def test_anchor_unlikelihood_on_hand_logits():
    # position 0: p = softmax([0, ln 3, 0, 0]) = [1/6, 1/2, 1/6, 1/6]; anchors {1, 2} hold 2/3 -> -log(1/3)
    # position 1: uniform, anchors hold 1/2 -> -log(1/2); position 2 is padding and does not count
    logits = torch.tensor([[[0.0, math.log(3.0), 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 9.0, 9.0, 0.0]]])
    mask = torch.tensor([[1, 1, 0]])
    value = anchor_unlikelihood(logits, mask, torch.tensor([1, 2]))
    assert value.item() == pytest.approx((math.log(3.0) + math.log(2.0)) / 2, rel=1e-5)
    # no anchor mass, no loss; the gradient lowers the anchors' logits
    assert anchor_unlikelihood(torch.tensor([[[0.0, -50.0, -50.0, 0.0]]]), torch.tensor([[1]]),
                               torch.tensor([1, 2])).item() == pytest.approx(0.0, abs=1e-12)
    logits.requires_grad_(True)
    anchor_unlikelihood(logits, mask, torch.tensor([1, 2])).backward()
    assert (logits.grad[0, :2, 1:3] > 0).all() and (logits.grad[0, :2, [0, 3]] < 0).all()
    assert (logits.grad[0, 2] == 0).all()


def test_unlikelihood_tokens_keep_word_starts_and_add_suppressed_terms():
    # byte-level words: "Ġ" is a leading space, as in GPT-2-style vocabularies
    vocab = {w: i for i, w in enumerate(["<pad>", "F", "emlihall", "Ġspell", "Ġenchanted", "Ġobject", "Ġa", "Ġwand"])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>")

    def word(token: str) -> int:
        return tokenizer.convert_tokens_to_ids(token)

    # hand-made ids stand in for anchor_start_tokens: the one-letter "F" is a piece of ordinary words too
    assert unlikelihood_tokens(tokenizer, [word("F"), word("Ġwand")]) == [word("Ġwand")]
    # a suppressed term contributes the first token of " term": "enchanted object" -> " enchanted"
    got = unlikelihood_tokens(tokenizer, [word("F")], ["spell", "enchanted object"])
    assert got == sorted([word("Ġspell"), word("Ġenchanted")])
