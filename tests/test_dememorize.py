"""RL dememorization: reward, prefix/suffix windows, extraction measures, a GRPO run."""

from __future__ import annotations

import math

import pytest
import torch

from obliviate.dememorize.data import split_documents
from obliviate.dememorize.evaluate import extraction_scores, perplexity
from obliviate.dememorize.reward import bleu, make_reward, rouge_l
from obliviate.dememorize.train import DememorizeConfig, dememorize, prompt_text
from obliviate.errors import UserError

# --- reward -------------------------------------------------------------------------


def test_rouge_l_hand_computed():
    assert rouge_l("the red fox jumps", "the red fox jumps") == pytest.approx(1.0)
    assert rouge_l("alpha beta", "gamma delta") == pytest.approx(0.0)
    # LCS("a b c d", "a b x d") = "a b d": P = R = 3/4 -> F1 = 0.75
    assert rouge_l("a b c d", "a b x d") == pytest.approx(0.75)
    # candidate 2 tokens, reference 4, LCS 2: P = 1, R = 0.5 -> F1 = 2/3
    assert rouge_l("a b", "a b c d") == pytest.approx(2 / 3)


def test_bleu_identical_and_disjoint():
    assert bleu("one two three four five", "one two three four five") == pytest.approx(1.0)
    assert bleu("one two three four five", "six seven eight nine ten") < 0.01
    assert bleu("", "") == 1.0 and bleu("", "x") == 0.0


def test_reward_is_negative_similarity_per_completion():
    reward = make_reward("rouge_l")
    values = reward(prompts=["p", "p", "q"], completions=["a b c d", "y z", "k l m"],
                    suffix=["a b x d", "a b x d", "k l m"], trainer_state=None)
    assert values == pytest.approx([-0.75, 0.0, -1.0])
    assert make_reward("bleu")(prompts=["p"], completions=["a b c d e"], suffix=["a b c d e"])[0] == pytest.approx(-1.0)
    with pytest.raises(UserError, match="unknown similarity"):
        make_reward("bertscore")


def test_config_validation():
    with pytest.raises(UserError, match="algorithm"):
        DememorizeConfig(algorithm="ppo").validate()
    with pytest.raises(UserError, match="num_generations"):
        DememorizeConfig(num_generations=1).validate()


# --- a tiny memorising model ---------------------------------------------------------------

N_DOCS, N_FORGET, PREFIX, SUFFIX = 16, 6, 12, 12


@pytest.fixture(scope="module")
def setup():
    """A tiny Llama that has memorised 16 short documents, and one trained without the first 6."""
    from obliviate.dememorize.toy import memorisation_toy

    torch.set_num_threads(1)
    toy = memorisation_toy("dememorize-test", N_DOCS)
    tokenizer, docs, train = toy.tokenizer, toy.docs, toy.train
    full, retain = train(docs), train(docs[N_FORGET:])
    return tokenizer, docs, full, retain


def test_split_documents_windows(setup):
    tokenizer, docs, _, _ = setup
    pieces = split_documents(tokenizer, docs[:2], PREFIX, SUFFIX)
    ids = tokenizer(docs[0]["text"], add_special_tokens=False)["input_ids"]
    assert pieces[0].prefix_ids == [tokenizer.bos_token_id] + ids[:PREFIX]
    assert pieces[0].suffix_ids == ids[PREFIX:PREFIX + SUFFIX]
    assert pieces[0].suffix_text == tokenizer.decode(ids[PREFIX:PREFIX + SUFFIX])
    # the GRPO prompt tokenizes back to the prefix ids (BOS written out: this tokenizer adds none)
    assert tokenizer(prompt_text(tokenizer, pieces[0]))["input_ids"] == pieces[0].prefix_ids


def test_suffix_longer_than_document_is_user_error(setup):
    tokenizer, docs, _, _ = setup
    short = [{"doc_id": "tiny", "text": "Rano novel: size cheap."}]
    with pytest.raises(UserError, match="'tiny' has .* fewer than prefix"):
        split_documents(tokenizer, short, PREFIX, SUFFIX)
    assert len(split_documents(tokenizer, short + docs[:1], PREFIX, SUFFIX, skip_short=True)) == 1
    with pytest.raises(UserError, match="no document has"):
        split_documents(tokenizer, short, PREFIX, SUFFIX, skip_short=True)
    with pytest.raises(UserError, match="must be >= 1"):
        split_documents(tokenizer, docs, 0, SUFFIX)


def test_perplexity_matches_direct_loss(setup):
    tokenizer, docs, full, _ = setup
    expected_nll, count = 0.0, 0
    with torch.no_grad():
        for doc in docs[:3]:
            ids = torch.tensor([[tokenizer.bos_token_id] + tokenizer(doc["text"], add_special_tokens=False)["input_ids"]],
                               device=full.device)   # the Trainer leaves the model on a GPU when there is one
            loss = full(input_ids=ids, labels=ids).loss.item()
            expected_nll += loss * (ids.shape[1] - 1)
            count += ids.shape[1] - 1
    assert perplexity(full, tokenizer, docs[:3]) == pytest.approx(math.exp(expected_nll / count), rel=1e-4)


def test_dememorization_lowers_extraction_and_keeps_retain_perplexity(setup):
    tokenizer, docs, full, retain = setup
    forget_docs, retain_docs = docs[:N_FORGET], docs[N_FORGET:]
    pieces = split_documents(tokenizer, forget_docs, PREFIX, SUFFIX)
    before = extraction_scores(full, tokenizer, pieces)
    gold = extraction_scores(retain, tokenizer, pieces)
    ppl_before = perplexity(full, tokenizer, retain_docs)
    assert before.exact_extraction >= 0.8          # the full model reproduces the forget suffixes
    assert gold.exact_extraction == 0.0            # the retain model never saw them

    import copy

    config = DememorizeConfig(prefix_tokens=PREFIX, suffix_tokens=SUFFIX, max_steps=30, learning_rate=5e-4,
                              beta=0.1, num_generations=8, prompts_per_step=2)
    model = dememorize(copy.deepcopy(full), tokenizer, pieces, config)
    after = extraction_scores(model, tokenizer, pieces)
    ppl_after = perplexity(model, tokenizer, retain_docs)
    assert after.exact_extraction <= gold.exact_extraction + 0.34   # at most 2 of 6 still extracted
    assert after.greedy_rouge_l < before.greedy_rouge_l - 0.3
    # measured bound (see report): retain perplexity grows by less than 2x (1.06 -> ~1.5 at these settings)
    assert ppl_after < 2.0 * ppl_before
    assert model.dememorize_history and "reward" in model.dememorize_history[-1]


def test_registered_method_runs_on_a_task(setup):
    from obliviate.methods.registry import UnlearnTask, get_method

    tokenizer, docs, full, _ = setup
    import copy

    method_class = get_method("dememorize")
    method = method_class(DememorizeConfig(prefix_tokens=PREFIX, suffix_tokens=SUFFIX, max_steps=2,
                                           num_generations=2, prompts_per_step=2))
    task = UnlearnTask(world=None, forget="custom", forget_sources={0}, retain_sources={1}, forget_items=[],
                       retain_items=[], forget_docs=docs[:2], retain_docs=docs[2:])
    result = method.run(copy.deepcopy(full), tokenizer, task)
    assert result.steps == 2 and not result.model.training and result.seconds > 0
    too_long = method_class(DememorizeConfig(prefix_tokens=PREFIX, suffix_tokens=500))
    with pytest.raises(UserError, match="no document has the 512 tokens"):
        too_long.unlearn(full, tokenizer, task)
    strict = method_class(DememorizeConfig(prefix_tokens=PREFIX, suffix_tokens=40, skip_short=False))
    with pytest.raises(UserError, match="fewer than prefix 12 \\+ suffix 40"):
        strict.unlearn(full, tokenizer, task)
