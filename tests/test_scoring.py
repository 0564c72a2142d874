"""The scoring engine and batched generation against naive per-item computations."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import Gemma2Config, Gemma2ForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from obliviate.errors import UserError
from obliviate.eval.generation import GreedyConfig, generate_greedy
from obliviate.eval.scoring import (
    EncodedPair,
    ScoringConfig,
    encode_pairs,
    forward_plan,
    length_batches,
    pack_rows,
    pad_token_id,
    score_continuations,
    score_encoded,
    token_ids,
    tree_attention_mask,
)
from obliviate.models.loading import check_vocab

torch.set_num_threads(1)

TEXTS = [
    "Question: Where was Lorin Vask born?\nAnswer: Lorin Vask was born in Kest.",
    "The quick brown fox jumps over the lazy dog while the old cat sleeps by the fire.",
    "Wenna and Dorrik walked to Kellinmoor Academy with their wands in hand.",
]


def build_tokenizer(vocab_size: int = 300):
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(TEXTS * 3, trainer)
    # a BOS on every encoding, as Llama tokenizers do
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def build_model(vocab_size: int, seed: int = 0):
    torch.manual_seed(seed)
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2, vocab_size=vocab_size, max_position_embeddings=512,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def tiny():
    tokenizer = build_tokenizer()
    return build_model(len(tokenizer)), tokenizer


PAIRS = [
    ("Question: Where was Lorin Vask born?\nAnswer:", " Kest"),  # one-token-ish answer
    ("Question: Where was Lorin Vask born?\nAnswer:", " Lorin Vask was born in Kest."),
    ("The", " quick brown fox jumps over the lazy dog while the old cat sleeps by the fire. " * 4),  # long
    ("Wenna and Dorrik walked to", " Kellinmoor Academy"),
    ("", "Wenna and Dorrik"),  # empty prompt: scored after BOS
]


def naive_scores(model, tokenizer, pairs):
    """One unpadded forward per item; the obvious loop the engine must agree with."""
    out = []
    with torch.no_grad():
        for item in encode_pairs(tokenizer, pairs):
            ids = torch.tensor([item.input_ids])
            logits = model(ids).logits[0].float()
            log_probs = torch.log_softmax(logits[:-1], dim=-1)[item.start - 1:]
            targets = ids[0, item.start:]
            token_lp = log_probs.gather(-1, targets[:, None])[:, 0]
            probs = log_probs.exp()
            mu = (probs * log_probs).sum(-1)
            sigma = ((probs * (log_probs - mu[:, None]) ** 2).sum(-1)).sqrt()
            out.append({"nll_sum": -token_lp.sum().item(), "n": len(targets), "lp": token_lp.numpy(),
                        "argmax": (log_probs.argmax(-1) == targets).numpy(),
                        "minkpp": ((token_lp - mu) / sigma).numpy()})
    return out


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("batch_size, max_batch_tokens", [(2, None), (8, None), (8, 60)])
@pytest.mark.parametrize("minkpp", [True, False])
def test_engine_equals_naive_loop(tiny, side, batch_size, max_batch_tokens, minkpp):
    model, tokenizer = tiny
    expected = naive_scores(model, tokenizer, PAIRS)
    got = score_continuations(model, tokenizer, PAIRS, ScoringConfig(
        batch_size=batch_size, padding_side=side, minkpp=minkpp, max_batch_tokens=max_batch_tokens))
    lengths = [len(e.input_ids) for e in encode_pairs(tokenizer, PAIRS)]
    assert max(lengths) > 10 * min(lengths)  # really different lengths in one batch
    for g, e in zip(got, expected):
        assert g.n_tokens == e["n"]
        assert g.nll_sum == pytest.approx(e["nll_sum"], abs=1e-4)
        np.testing.assert_allclose(g.logprobs, e["lp"], atol=1e-4)
        np.testing.assert_array_equal(g.argmax_match, e["argmax"])
        if minkpp:
            np.testing.assert_allclose(g.minkpp, e["minkpp"], atol=1e-4)
        else:
            assert g.minkpp is None
        assert g.avg_nll == pytest.approx(e["nll_sum"] / e["n"], abs=1e-4)


def test_continuation_tokens_are_whole_minus_prompt(tiny):
    _, tokenizer = tiny
    [item] = encode_pairs(tokenizer, [("Question: Where?\nAnswer:", " Kest")])
    prompt_ids = tokenizer("Question: Where?\nAnswer:")["input_ids"]
    assert item.input_ids[: item.start] == prompt_ids
    assert tokenizer.decode(item.input_ids[item.start:]) == " Kest"
    assert item.input_ids[0] == tokenizer.bos_token_id


def test_token_ids_equal_the_tokenizer_call_on_both_paths(tiny):
    _, tokenizer = tiny
    texts = [p + c for p, c in PAIRS]
    expected = tokenizer(texts)["input_ids"]
    assert token_ids(tokenizer, texts) == expected  # Rust backend path
    assert token_ids(tokenizer, texts, add_special_tokens=False) == tokenizer(texts, add_special_tokens=False)["input_ids"]
    backend = tokenizer.backend_tokenizer
    backend.enable_truncation(max_length=4)  # a configured backend must not be trusted
    try:
        assert token_ids(tokenizer, texts) == expected
    finally:
        backend.no_truncation()


def test_length_batches_respect_rows_and_token_budget():
    lengths = [5, 50, 10, 48, 7, 200]
    # longest first; 200 alone (over budget), then 50+48 (2 x 50 = 100 <= 100), then the rest
    assert length_batches(lengths, batch_size=8, max_batch_tokens=100) == [[5], [1, 3], [2, 4, 0]]
    assert length_batches(lengths, batch_size=2) == [[5, 1], [3, 2], [4, 0]]


def test_truncation_keeps_the_continuation(tiny):
    _, tokenizer = tiny
    [full] = encode_pairs(tokenizer, [(PAIRS[2][0] + PAIRS[2][1], " Kest")])
    [cut] = encode_pairs(tokenizer, [(PAIRS[2][0] + PAIRS[2][1], " Kest")], max_length=12)
    assert len(cut.input_ids) == 12
    assert cut.input_ids[cut.start:] == full.input_ids[full.start:]


def test_empty_continuation_is_a_user_error(tiny):
    _, tokenizer = tiny
    with pytest.raises(UserError, match="item 1"):
        encode_pairs(tokenizer, [("a", " b"), ("Question:", "")])


class FixedDistribution(torch.nn.Module):
    """A 'model' predicting p = [0.5, 0.25, 0.25] at every position, whatever the input."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(3, 2)
        self.config = SimpleNamespace(max_position_embeddings=64)
        self.calls = []

    def get_input_embeddings(self):
        return self.embed

    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=None, logits_to_keep=0):
        self.calls.append({"shape": tuple(input_ids.shape), "keep": logits_to_keep})
        row = torch.log(torch.tensor([0.5, 0.25, 0.25]))
        logits = row.expand(input_ids.shape[0], input_ids.shape[1], 3)
        if logits_to_keep:
            logits = logits[:, -logits_to_keep:]
        return SimpleNamespace(logits=logits)


def test_hand_computed_logprobs_argmax_and_minkpp():
    # mu = 0.5 ln.5 + 0.5 ln.25 = -1.5 ln2, sigma = 0.5 ln2: token 0 -> z = +1, tokens 1, 2 -> z = -1
    ln2 = math.log(2)
    model = FixedDistribution()
    tokenizer = SimpleNamespace(pad_token_id=0, eos_token_id=None)
    items = [EncodedPair([0, 0, 1, 2], start=2), EncodedPair([1, 0, 0], start=1)]
    for side in ("left", "right"):
        first, second = score_encoded(model, tokenizer, items, ScoringConfig(padding_side=side, minkpp=True))
        np.testing.assert_allclose(first.logprobs, [-2 * ln2, -2 * ln2], rtol=1e-6)
        assert first.nll_sum == pytest.approx(4 * ln2)
        assert first.argmax_match.tolist() == [False, False]
        np.testing.assert_allclose(first.minkpp, [-1.0, -1.0], rtol=1e-5)
        np.testing.assert_allclose(second.logprobs, [-ln2, -ln2], rtol=1e-6)
        assert second.argmax_match.tolist() == [True, True]
        np.testing.assert_allclose(second.minkpp, [1.0, 1.0], rtol=1e-5)
    # only the logits from the earliest continuation position on are asked for
    assert model.calls[0]["keep"] == 4 - 1


def test_batched_generation_equals_one_by_one(tiny):
    model, tokenizer = tiny
    prompts = ["Question: Where was Lorin Vask born?\nAnswer:", "The", PAIRS[2][1][:120], "Wenna and"]
    config = GreedyConfig(max_new_tokens=8, batch_size=4)
    batched = generate_greedy(model, tokenizer, prompts, config)
    single = [generate_greedy(model, tokenizer, [p], GreedyConfig(max_new_tokens=8))[0] for p in prompts]
    assert batched == single
    assert len(set(batched)) > 1 and all(batched)


def test_generation_cuts_at_stop_string(tiny):
    model, tokenizer = tiny
    full = generate_greedy(model, tokenizer, ["The", "Wenna and"], GreedyConfig(max_new_tokens=12))
    stop = full[0][2:4] or full[0][:1]  # a string the greedy output is known to contain
    cut = generate_greedy(model, tokenizer, ["The", "Wenna and"], GreedyConfig(max_new_tokens=12, stop_strings=(stop,)))
    assert cut[0] == full[0][: full[0].find(stop)]
    assert stop not in cut[0]


def test_mismatched_tokenizer_and_model_vocab(tiny):
    _, tokenizer = tiny
    small_model = build_model(vocab_size=len(tokenizer) - 50)
    with pytest.raises(UserError, match="do not belong together"):
        check_vocab(small_model, tokenizer)


def test_model_without_position_ids_is_scored_with_right_padding():
    class NoPositions(FixedDistribution):
        def forward(self, input_ids, attention_mask=None, use_cache=None):
            self.first_columns = attention_mask[:, 0].tolist()
            return super().forward(input_ids, attention_mask)

    model = NoPositions()
    tokenizer = SimpleNamespace(pad_token_id=0, eos_token_id=None)
    items = [EncodedPair([0, 0, 1, 2], start=2), EncodedPair([1, 0], start=1)]
    first, second = score_encoded(model, tokenizer, items, ScoringConfig(padding_side="left"))
    assert model.first_columns == [1, 1]  # every row starts at column 0
    assert first.n_tokens == 2 and second.n_tokens == 1


# ---- prompt sharing (packed rows) ------------------------------------------------------

def shared_prompt_pairs():
    """Evaluation-shaped items: several continuations per prompt, plus a long document."""
    prompts = ["Question: Where was Lorin Vask born?\nAnswer:", "Question: Who walked to the academy?\nAnswer:"]
    answers = [" Kest", " Lorin Vask was born in Kest.", " Wenna and Dorrik", " The quick brown fox.",
               " Kellinmoor Academy with their wands in hand", " Dog"]
    pairs = [(p, a) for p in prompts for a in answers]
    pairs.append(("", TEXTS[1] * 3))  # a document longer than max_row_tokens below
    pairs.append(("", TEXTS[2]))
    return pairs


@pytest.mark.parametrize("max_row_tokens", [40, 128])
def test_packed_rows_equal_one_pair_per_row(tiny, max_row_tokens):
    model, tokenizer = tiny
    pairs = shared_prompt_pairs()
    encoded = encode_pairs(tokenizer, pairs)
    config = ScoringConfig(batch_size=3, minkpp=True, max_row_tokens=max_row_tokens)
    assert forward_plan(model, encoded, pad_token_id(tokenizer), config).packed
    rows = pack_rows(encoded, True, max_row_tokens)
    assert len(rows) < len(pairs)  # prompts really were shared
    assert sorted(i for r in rows for i, _, _ in r.items) == list(range(len(pairs)))
    packed = score_encoded(model, tokenizer, encoded, config)
    plain = score_encoded(model, tokenizer, encoded, ScoringConfig(batch_size=3, minkpp=True, share_prompts=False))
    expected = naive_scores(model, tokenizer, pairs)
    for p, q, e in zip(packed, plain, expected):
        assert p.n_tokens == q.n_tokens == e["n"]
        np.testing.assert_allclose(p.logprobs, e["lp"], atol=1e-4)
        np.testing.assert_allclose(q.logprobs, e["lp"], atol=1e-4)
        np.testing.assert_array_equal(p.argmax_match, e["argmax"])
        np.testing.assert_allclose(p.minkpp, e["minkpp"], atol=1e-4)


def test_pack_rows_layout_by_hand():
    items = [EncodedPair([1, 5, 6, 7], start=2), EncodedPair([1, 5, 8], start=2), EncodedPair([1, 9, 4], start=2)]
    first, second = pack_rows(items, True, 64)
    assert first.input_ids == [1, 5, 6, 7, 8]
    assert first.position_ids == [0, 1, 2, 3, 2]  # the second continuation restarts after the prompt
    assert first.segments == [0, 0, 1, 1, 2]
    # the prompt's last column (1) predicts both continuations' first tokens
    assert first.items == [(0, [1, 2], [6, 7]), (1, [1], [8])]
    assert second.input_ids == [1, 9, 4] and second.items == [(2, [1], [4])]
    # a row budget of 4 tokens starts a new row for the second continuation
    assert [r.input_ids for r in pack_rows(items, True, 4)] == [[1, 5, 6, 7], [1, 5, 8], [1, 9, 4]]


def test_tree_attention_mask_by_hand():
    # prompt (2 tokens), continuation 1 (2 tokens), continuation 2 (1 token), one padding column
    allowed = tree_attention_mask(torch.tensor([[0, 0, 1, 1, 2, -1]]), torch.float32)[0, 0] == 0
    expected = torch.tensor([
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 0, 0, 1, 0],  # continuation 2 does not see continuation 1
        [0, 0, 0, 0, 0, 1],  # padding query sees only itself
    ], dtype=torch.bool)
    assert torch.equal(allowed, expected)


def test_models_whose_head_is_not_a_plain_projection_fall_back_to_one_pair_per_row():
    """Gemma-2 soft-caps its logits after the output head: packing must notice and back off."""
    tokenizer = build_tokenizer()
    pairs = shared_prompt_pairs()
    encoded = encode_pairs(tokenizer, pairs)
    plans = {}
    for softcap in (None, 0.5):
        torch.manual_seed(0)
        model = Gemma2ForCausalLM(Gemma2Config(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
            head_dim=16, vocab_size=len(tokenizer), final_logit_softcapping=softcap, pad_token_id=0, bos_token_id=1,
            eos_token_id=2)).eval()
        plans[softcap] = forward_plan(model, encoded, pad_token_id(tokenizer), ScoringConfig()).packed
        got = score_encoded(model, tokenizer, encoded, ScoringConfig(batch_size=4))
        for g, e in zip(got, naive_scores(model, tokenizer, pairs)):
            np.testing.assert_allclose(g.logprobs, e["lp"], atol=1e-4)
    assert plans == {None: True, 0.5: False}
