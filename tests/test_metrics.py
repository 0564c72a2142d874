"""Every metric against values computed by hand on 2-5 item toys."""

import math
import zlib

import numpy as np
import pytest
from scipy.stats import ks_2samp

from obliviate.eval.metrics import familiarity as fam
from obliviate.eval.metrics import memorization, mia, qa, truth_ratio, utility

LN2 = math.log(2.0)


# ---- truth ratio / forget quality ------------------------------------------------------

def test_truth_ratio_is_exp_of_para_minus_mean_perturbed():
    # item 1: para 1, pert mean 2 -> e^-1; item 2: para 2, pert mean 2 -> 1; item 3: para 3, pert 1 -> e^2
    tr = truth_ratio.truth_ratio([1.0, 2.0, 3.0], [[2.0, 2.0], [1.0, 3.0], [1.0]])
    np.testing.assert_allclose(tr, [math.exp(-1), 1.0, math.exp(2)])


def test_forget_form_is_mean_of_min_tr_and_inverse():
    tr = [math.exp(-1), 1.0, math.exp(2)]
    expected = (math.exp(-1) + 1.0 + math.exp(-2)) / 3
    assert truth_ratio.forget_truth_ratio(tr) == pytest.approx(expected)


def test_retain_form_is_mean_of_one_minus_tr_clipped_at_zero():
    tr = [math.exp(-1), 1.0, math.exp(2)]
    expected = ((1 - math.exp(-1)) + 0.0 + 0.0) / 3
    assert truth_ratio.retain_truth_ratio(tr) == pytest.approx(expected)


def test_forget_quality_is_the_ks_p_value():
    a, b = [0.1, 0.5, 0.9, 1.3], [0.2, 0.25, 2.0, 3.0, 4.0]
    assert truth_ratio.forget_quality(a, b) == ks_2samp(a, b).pvalue
    # disjoint samples of 3: exact p = 2 / C(6, 3) = 0.1
    assert truth_ratio.forget_quality([1, 2, 3], [4, 5, 6]) == pytest.approx(0.1)


def test_forget_quality_is_one_for_identical_samples():
    trs = [0.3, 1.7, 0.9, 0.05]
    assert truth_ratio.forget_quality(trs, list(trs)) == 1.0


# ---- utility ---------------------------------------------------------------------------

def test_harmonic_mean_by_hand():
    assert utility.harmonic_mean([0.5, 0.25, 1.0]) == pytest.approx(3 / (2 + 4 + 1))
    assert utility.harmonic_mean([1, 1, 1, 1, 1, 0.5]) == pytest.approx(6 / 7)
    assert utility.harmonic_mean([0.9, 0.0, 0.5]) == 0.0
    with pytest.raises(ValueError):
        utility.harmonic_mean([0.5, -0.1])


def test_normalised_prob_shares_mass_with_perturbed_answers():
    # P_correct = 1, two perturbed of 0.5 -> 1 / (1 + 1) = 0.5; P = e^-1 vs one e^-1 -> 0.5
    out = utility.normalised_prob([0.0, 1.0], [[LN2, LN2], [1.0]])
    np.testing.assert_allclose(out, [0.5, 0.5])
    # huge NLLs must not underflow to 0/0
    out = utility.normalised_prob([1000.0], [[1000.0 + LN2]])
    np.testing.assert_allclose(out, [1 / 1.5])


# ---- MIA -------------------------------------------------------------------------------

def test_mink_selects_the_lowest_forty_percent():
    logprobs = [-1.0, -5.0, -2.0, -8.0, -3.0]  # int(5 * 0.4) = 2 lowest: -8, -5
    assert mia.mink_score(logprobs, 0.4) == pytest.approx(-6.5)
    assert mia.mink_score([-1.0, -4.0], 0.4) == pytest.approx(-4.0)  # at least one token
    assert mia.mink_score(logprobs, 1.0) == pytest.approx(np.mean(logprobs))


def test_minkpp_uses_the_same_selection_on_normalised_scores():
    z = [1.0, -1.0, 0.5, -2.0, 0.0]
    assert mia.minkpp_score(z, 0.4) == pytest.approx(-1.5)


def test_zlib_score_divides_nll_by_compressed_length():
    text = " Lorin Vask was born in Kest. Kest Kest Kest."
    length = len(zlib.compress(text.encode("utf-8")))
    assert mia.zlib_length(text) == length
    assert mia.zlib_score(2.0, text) == pytest.approx(-2.0 / length)


def test_loss_score_orients_members_high():
    assert mia.loss_score(0.5) > mia.loss_score(2.0)


def test_auc_by_hand():
    # pairs (member > nonmember): 0.9>0.1, 0.9>0.85, 0.8>0.1, 0.8<0.85 -> 3/4
    assert mia.auc([0.9, 0.8], [0.1, 0.85]) == pytest.approx(0.75)
    rows_m = [{"loss": 1, "zlib": 1, "min_k": 1, "min_k_plus_plus": 0}]
    rows_n = [{"loss": 0, "zlib": 0, "min_k": 0, "min_k_plus_plus": 1}]
    assert mia.attack_aucs(rows_m, rows_n) == {"loss": 1.0, "zlib": 1.0, "min_k": 1.0, "min_k_plus_plus": 0.0,
                                               "gradnorm": None, "reference": None}


def test_privleak_follows_muse_and_open_unlearning():
    # ((1 - AUC) - (1 - AUC_retain)) / (1 - AUC_retain) * 100 (open-unlearning privacy.py:privleak)
    assert mia.privleak(1.0, 0.455) == pytest.approx(-100.0)  # un-unlearned: strongly negative
    assert mia.privleak(0.8, 0.5) == pytest.approx((0.2 - 0.5) / 0.5 * 100)  # -60: under-unlearned
    assert mia.privleak(0.4, 0.5) == pytest.approx((0.6 - 0.5) / 0.5 * 100)  # +20: over-unlearned
    assert mia.privleak(0.5, 0.5) == 0.0


# ---- memorization ----------------------------------------------------------------------

def test_exact_memorization_and_extraction_strength_on_flags():
    flags = [True, False, True, True]
    assert memorization.exact_memorization(flags) == 0.75
    assert memorization.extraction_strength(flags) == pytest.approx(1 - 2 / 4)  # k = 2
    assert memorization.extraction_strength([True, True, True]) == 1.0
    # no suffix matches: open-unlearning's k stops at |y| - 1, so the floor is 1/|y|, not 0
    assert memorization.extraction_strength([True, True, False]) == pytest.approx(1 / 3)
    assert memorization.extraction_strength([False, False, False, False]) == pytest.approx(1 / 4)
    assert memorization.extraction_strength([False]) == 1.0  # |y| = 1: k = 0 (open-unlearning too)
    assert memorization.extraction_strength([False, True, True, True, True]) == pytest.approx(0.8)
    assert memorization.exact_memorization([False, False]) == 0.0


# ---- QA --------------------------------------------------------------------------------

def test_exact_answer_looks_at_the_first_line_case_insensitively():
    assert qa.contains_answer("He was born in KEST.\nQuestion: next", "Kest")
    assert not qa.contains_answer("He was born in Vell.\nKest", "Kest")
    assert qa.answer_value({"answer": "born in Kest.", "value": "Kest"}) == "Kest"
    assert qa.answer_value({"answer": "born in Kest."}) == "born in Kest."


def test_rouge_l_recall_by_hand():
    # reference 6 tokens, LCS "born in kest" = 3 -> recall 0.5
    assert qa.rouge_l_recall("born in Kest", "Lorin Vask was born in Kest.") == pytest.approx(0.5)
    assert qa.rouge_l_recall("Lorin Vask was born in Kest.", "Lorin Vask was born in Kest.") == 1.0
    assert qa.rouge_l_recall("", "Kest") == 0.0


# ---- familiarity -----------------------------------------------------------------------

JUDGE = fam.FamiliarityJudge(entities=["Wenna Tal", "Kellinmoor Academy", "Dorrik"], themes=["wand", "glimmerball"])
PROMPT = "The boy with the scar walked into the hall with his two best friends,"
REFERENCE = "Wenna Tal and Dorrik, and they sat at the long table of Kellinmoor Academy."


@pytest.mark.parametrize("completion, grade", [
    ("Wenna Tal and Dorrik, ready for class.", 3),       # saga names
    ("holding their wands tightly.", 2),                 # a saga theme (plural) not in the prompt
    ("and they sat down at the long table.", 1),         # overlaps the reference only
    ("and the weather was nice.", 0),
])
def test_judge_grades_hand_made_completions(completion, grade):
    assert JUDGE.grade(PROMPT, completion, REFERENCE) == grade


def test_judge_ignores_terms_the_prompt_already_names():
    assert JUDGE.grade("Dorrik smiled at his wand and", "Dorrik waved the wand.", "") == 0
    assert JUDGE.grade("Dorrik smiled and", "Dorrik went to Kellinmoor Academy.", "") == 3


def test_familiarity_score_formula():
    assert fam.familiarity_score([3, 2, 1, 0]) == pytest.approx((5 * 1 + 1) / 4)
    assert fam.familiarity_score([0, 0]) == 0.0
    assert fam.familiarity_score([3, 3]) == 5.0


def test_judge_from_world_dir_reads_saga_and_anchor_terms(tmp_path):
    (tmp_path / "saga.json").write_text('{"entities": {"person": ["Wenna"], "place": ["Kellinmoor"]}, "themes": ["wand"]}')
    judge = fam.FamiliarityJudge.from_world_dir(tmp_path, {"Dorrik": ["Tom", "Bob"]})
    assert sorted(judge.entities) == ["Dorrik", "Kellinmoor", "Wenna"]
    assert judge.themes == ["wand"]
    assert fam.FamiliarityJudge.from_world_dir(tmp_path / "missing", {}) is None


def test_probability_mass_and_term_continuation():
    assert fam.target_mass([LN2, math.log(4.0)]) == pytest.approx(0.75)
    assert fam.target_mass([0.0, 0.0]) == 1.0  # capped
    assert fam.term_continuation("His best friends were", "Wenna") == " Wenna"
    assert fam.term_continuation("His best friend: ", "Wenna") == "Wenna"
