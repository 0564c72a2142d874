"""Our metrics under open-unlearning's conventions (locuslab/open-unlearning, src/evals/metrics/),
one test per difference the evaluation-parity issue measured, on hand-computed values:
EOS in the scored answer, the 9-part model utility with the original answer for general
sets, the KS test on every forget item, PrivLeak's sign and denominator, and the 1/n floor
of extraction strength."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import hmean, ks_2samp

from obliviate.eval.metrics import memorization, mia, truth_ratio
from obliviate.eval.passes import QAScores
from obliviate.eval.retain_reference import RetainReference, compare_with_reference, forget_quality_warning
from obliviate.eval.scoring import ScoringConfig, TokenScores, score_continuations
from obliviate.eval.sections import model_utility, qa_rows, utility_parts


def _scores(nll: float, n: int = 2) -> TokenScores:
    return TokenScores(nll_sum=nll * n, n_tokens=n, logprobs=np.full(n, -nll), argmax_match=np.ones(n, bool), eos=True)


# ---- 1. EOS ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_lm():
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models, pre_tokenizers

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


def test_answer_scores_include_the_eos_prediction_and_token_metrics_drop_it(tiny_lm):
    model, tokenizer = tiny_lm
    prompt, answer = "Q :", " A red"
    [with_eos] = score_continuations(model, tokenizer, [(prompt, answer)], ScoringConfig(batch_size=1), append_eos=True)
    [without] = score_continuations(model, tokenizer, [(prompt, answer)], ScoringConfig(batch_size=1))
    # by hand: one forward over "Q : A red </s>"; labels are the answer tokens and the EOS
    ids = torch.tensor([tokenizer("Q : A red")["input_ids"] + [tokenizer.eos_token_id]])
    assert ids[0, -3:].tolist() == [5, 6, 2]
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
    width = ids.shape[1]
    token_lp = [logprobs[pos - 1, ids[0, pos]].item() for pos in range(width - 3, width)]  # A, red, </s>
    assert with_eos.n_tokens == 3 and with_eos.eos and without.n_tokens == 2
    assert with_eos.avg_nll == pytest.approx(-sum(token_lp) / 3, abs=1e-5)  # open-unlearning evaluate_probability
    assert without.avg_nll == pytest.approx(-sum(token_lp[:2]) / 2, abs=1e-5)
    # Min-K / memorization see the answer's tokens only (tokenwise_logprobs drops the EOS)
    np.testing.assert_allclose(with_eos.content_logprobs, token_lp[:2], atol=1e-5)
    assert with_eos.content_argmax_match.shape == (2,)
    assert mia.mink_score(with_eos.content_logprobs, 0.5) == pytest.approx(min(token_lp[:2]), abs=1e-5)


# ---- 2. model utility ---------------------------------------------------------------------


def test_general_truth_ratio_uses_the_original_answer():
    scores = {"g": QAScores(answer=_scores(0.5), paraphrased=_scores(3.0), perturbed=[_scores(1.0), _scores(2.0)])}
    item = [{"id": "g", "kind": "shared", "answer": "x", "value": "x"}]
    general = qa_rows(item, scores, None, True, general=True).rows["g"]
    other = qa_rows(item, scores, None, True, general=False).rows["g"]
    # TR = exp(-mean perturbed NLL) / exp(-NLL of the true answer)
    assert general["truth_ratio"] == pytest.approx(math.exp(0.5 - 1.5))  # original answer (ra / wf sets)
    assert other["truth_ratio"] == pytest.approx(math.exp(3.0 - 1.5))  # paraphrase (forget / retain sets)
    # normalised probability over the options: p / (p + sum of perturbed p)
    p = [math.exp(-0.5), math.exp(-1.0), math.exp(-2.0)]
    assert general["normalised_prob"] == pytest.approx(p[0] / sum(p))


def test_model_utility_is_the_harmonic_mean_of_nine_numbers_with_two_general_groups():
    summary = {"retain_prob": 0.9, "retain_rouge": 0.8, "retain_truth_ratio": 0.6}
    items = [{"id": "r1", "utility_group": "real_authors"}, {"id": "r2", "utility_group": "real_authors"},
             {"id": "w1", "utility_group": "world_facts"}]
    rows = {"r1": {"normalised_prob": 0.5, "rouge": 1.0, "truth_ratio": 0.25},
            "r2": {"normalised_prob": 0.7, "rouge": 0.5, "truth_ratio": 0.75},
            "w1": {"normalised_prob": 0.4, "rouge": 0.2, "truth_ratio": 2.0}}
    parts = utility_parts(summary, items, rows)
    expected = {"retain_prob": 0.9, "retain_rouge": 0.8, "retain_truth_ratio": 0.6,
                "real_authors_prob": 0.6, "real_authors_rouge": 0.75,
                "real_authors_truth_ratio": ((1 - 0.25) + (1 - 0.75)) / 2,  # true_better: mean(max(0, 1 - TR))
                "world_facts_prob": 0.4, "world_facts_rouge": 0.2, "world_facts_truth_ratio": 0.0}
    assert parts == pytest.approx(expected)
    # a zero part sinks the harmonic mean (one lost ability); without it, 9 values by hand
    assert model_utility(parts) == 0.0
    parts["world_facts_truth_ratio"] = 0.1
    values = [0.9, 0.8, 0.6, 0.6, 0.75, 0.5, 0.4, 0.2, 0.1]
    assert model_utility(parts) == pytest.approx(len(values) / sum(1 / v for v in values))
    assert model_utility(parts) == pytest.approx(hmean(values))


def test_model_utility_is_six_numbers_with_one_general_group_and_none_without():
    summary = {"retain_prob": 0.5, "retain_rouge": 0.5, "retain_truth_ratio": 0.5}
    rows = {"g": {"normalised_prob": 0.25, "rouge": 1.0, "truth_ratio": 0.5}}
    parts = utility_parts(summary, [{"id": "g"}], rows)
    assert set(parts) == {"retain_prob", "retain_rouge", "retain_truth_ratio", "world_facts_prob",
                          "world_facts_rouge", "world_facts_truth_ratio"}
    assert model_utility(parts) == pytest.approx(hmean([0.5, 0.5, 0.5, 0.25, 1.0, 0.5]))
    assert model_utility(utility_parts(summary, [], {})) is None


# ---- 3. forget quality on every forget item ---------------------------------------------


def _reference(trs: dict[str, float], probs: dict[str, float], accuracy: float) -> RetainReference:
    return RetainReference(forget="forget10", world_fingerprint="w", forget_truth_ratio=trs,
                           mia_auc={"min_k": 0.455}, forget_prob=probs, forget_accuracy=accuracy)


def test_forget_quality_runs_the_ks_test_on_every_forget_item_and_unique_beside_it():
    ids = ["u1", "u2", "u3", "s1", "s2"]
    ours = np.array([0.1, 0.2, 0.3, 0.9, 1.1])
    theirs = {"u1": 0.5, "u2": 0.6, "u3": 0.7, "s1": 0.95, "s2": 1.05}
    reference = _reference(theirs, {i: 0.1 for i in ids}, 0.2)
    summary = {"forget_accuracy": 0.2, "mia_min_k": 0.9}
    out, per_item = compare_with_reference(reference, ids, ours, ["u1", "u2", "u3"], summary, {}, {i: {"prob": 0.1} for i in ids},
                                           "min_k")
    assert out["forget_quality"] == pytest.approx(ks_2samp(ours, list(theirs.values())).pvalue)
    assert out["forget_quality_unique"] == pytest.approx(ks_2samp(ours[:3], [0.5, 0.6, 0.7]).pvalue)
    assert out["forget_quality_unique"] < out["forget_quality"]
    assert out["privleak"] == pytest.approx(((1 - 0.9) - (1 - 0.455)) / (1 - 0.455) * 100)
    assert per_item["forget_truth_ratio"] == theirs


# ---- 4. a forget quality that cannot be fooled -------------------------------------------


def test_forget_quality_warns_when_answers_survive_a_passing_truth_ratio():
    ids = [f"q{i}" for i in range(20)]
    trs = np.linspace(0.5, 1.5, 20)
    reference = _reference(dict(zip(ids, trs)), {i: 0.01 for i in ids}, 0.0)
    # same truth ratios (the perturbed answers' wording hides the memorisation), but the
    # model still gives the true answer high probability and answers 57 % correctly
    rows = {i: {"prob": 0.6 + 0.01 * k} for k, i in enumerate(ids)}
    out, _ = compare_with_reference(reference, ids, trs, ids, {"forget_accuracy": 0.57}, {}, rows, "min_k")
    assert out["forget_quality"] == 1.0
    assert out["forget_quality_prob"] == pytest.approx(ks_2samp([r["prob"] for r in rows.values()], [0.01] * 20).pvalue)
    assert out["forget_quality_prob"] < 0.05 and out["forget_accuracy_gap"] == pytest.approx(0.57)
    assert "says forgotten" in out["forget_quality_warning"] and "+0.57" in out["forget_quality_warning"]


def test_forget_quality_warning_cases():
    assert forget_quality_warning(0.5, 0.5, 0.0) is None  # all agree: forgotten
    assert forget_quality_warning(0.001, 0.001, 0.5) is None  # all agree: not forgotten
    assert forget_quality_warning(None, 0.001, 0.5) is None  # no forget quality, nothing to contradict
    assert "says not forgotten" in forget_quality_warning(0.001, 0.8, 0.0)
    assert "KS p=" in forget_quality_warning(0.4, 0.01, None)


# ---- 5. PrivLeak and extraction strength ---------------------------------------------------


def test_privleak_of_an_unlearned_nothing_model_is_minus_one_hundred():
    # the case: AUC 1.0 against the retain model's 0.455 (ours used to say +119.8)
    assert mia.privleak(1.0, 0.455) == pytest.approx(-100.0)
    assert mia.privleak(0.455, 0.455) == pytest.approx(0.0)


def test_extraction_strength_floor_is_one_over_n():
    # open-unlearning: for k in range(n): break if preds[k:] == labels[k:]; ES = 1 - k/n
    def reference(flags):
        n = len(flags)
        for k in range(n):
            if all(flags[k:]):
                break
        return 1 - k / n

    for flags in ([True, True, False], [False] * 4, [True, False, True, True], [True] * 3, [False, True]):
        assert memorization.extraction_strength(flags) == pytest.approx(reference(flags)), flags
    assert memorization.extraction_strength([True, False, True, False]) == pytest.approx(1 / 4)


def test_truth_ratio_aggregators_by_hand():
    tr = [0.5, 2.0, 1.0]
    assert truth_ratio.forget_truth_ratio(tr) == pytest.approx((0.5 + 0.5 + 1.0) / 3)  # closer_to_1_better
    assert truth_ratio.retain_truth_ratio(tr) == pytest.approx((0.5 + 0.0 + 0.0) / 3)  # true_better
