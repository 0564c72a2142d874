"""Ranking rules of WHP anchored-term discovery, on hand-made statistics and texts (no training).

The model-based parts (gains, alternatives from the baseline) are exercised end to end in
tests/test_whp.py; here a tiny random model only checks the wiring of the fallback alternatives.
"""

from __future__ import annotations

import math

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from obliviate.whp import discovery
from obliviate.whp.alternatives import fallback_alternatives
from obliviate.whp.anchors import is_sentence_start
from obliviate.whp.config import DiscoveryConfig
from obliviate.whp.ranking import rank_terms, term_score
from obliviate.whp.terms import TermStats, common_words_of, fragment_reason, is_personal_name, term_shape

CONFIG = DiscoveryConfig()


def stat(term: str, count: int, spec: float = 5.0, gain: float = 0.2, name: float | None = None,
         article: float = 0.0, generic: int = 0) -> TermStats:
    capitalised = term[:1].isupper()
    return TermStats(term, count, generic, gain=gain, specificity=spec,
                     name_share=(1.0 if capitalised else 0.0) if name is None else name, article_share=article)


def table(*stats: TermStats) -> dict[str, TermStats]:
    return {s.term: s for s in stats}


# -- text rules -------------------------------------------------------------------------------

@pytest.mark.parametrize("term, shape", [
    ("Caves of Laempe", "name"), ("Baisse Touley", "name"), ("enchanted object", "lower"),
    ("Vrouth Ziarloov find", "mixed"), ("Chapter 4", "mixed"), ("cindermoths", "lower"),
])
def test_term_shape(term, shape):
    assert term_shape(term) == shape


def test_fragments_are_recognised():
    stats = table(stat("Vrouth's", 9), stat("Vrouth Ziarloov find", 5), stat("Hidden deep", 10, name=0.0),
                  stat("Deep", 10, name=0.0), stat("Chapter", 18, name=0.0),
                  stat("Match of Drovault", 3), stat("match of Drovault", 8, name=0.0),
                  stat("Return of Slath", 4), stat("Slath", 18), stat("Caves of Laempe", 12), stat("Laempe", 12),
                  stat("First Lesson", 3), stat("Vrouth", 109))
    common = {"deep", "match", "return", "first", "lesson"}
    reasons = {t: fragment_reason(t, stats, common, CONFIG) for t in stats}
    assert reasons["Vrouth's"] == "possessive"
    assert reasons["Vrouth Ziarloov find"] == "mixes capitalised and common words"
    assert reasons["Deep"] == "capitalised only at sentence starts"       # "deep" is in use
    assert reasons["Chapter"] is None                                       # never lowercase: kept, no name bonus
    assert reasons["Match of Drovault"] == "title-cased form of 'match of Drovault'"
    assert reasons["match of Drovault"] == "mixes capitalised and common words"
    assert reasons["Return of Slath"] == "a title around 'Slath', which stands on its own"   # 4 < 0.5 * 18
    assert reasons["First Lesson"] == "only common words, title-cased"
    for term in ("Caves of Laempe", "Vrouth", "Laempe"):
        assert reasons[term] is None, term


def test_title_cased_variant_needs_the_lowercase_form_at_least_as_often():
    common = {"match"}
    often = table(stat("Match of Drovault", 3), stat("match of Drovault", 8, name=0.0), stat("Drovault", 22))
    rare = table(stat("Match of Drovault", 9), stat("match of Drovault", 2, name=0.0), stat("Drovault", 12))
    assert fragment_reason("Match of Drovault", often, common, CONFIG) == "title-cased form of 'match of Drovault'"
    assert fragment_reason("Match of Drovault", rare, common, CONFIG) is None


def test_personal_names_are_not_article_led():
    stats = table(stat("Baisse Touley", 9), stat("Virva Crown", 16, article=0.9), stat("Caves of Laempe", 12),
                  stat("Vrouth", 109))
    assert is_personal_name("Baisse Touley", stats)
    assert not is_personal_name("Virva Crown", stats)      # "the Virva Crown": an object
    assert not is_personal_name("Caves of Laempe", stats)  # a connector inside
    assert not is_personal_name("Vrouth", stats)           # one word


def test_common_words_are_lowercase_forms_in_use():
    assert common_words_of({"deep": 3, "Deep": 2, "Vrouth": 9, "dark room": 2}, {"Tower": 5, "tower": 1}) == {
        "deep", "tower"}


def test_abbreviated_titles_do_not_start_sentences():
    text = "He met Mr. Holmes. Then Watson came."
    assert not is_sentence_start(text, text.index("Holmes"))
    assert is_sentence_start(text, text.index("Then"))
    assert is_sentence_start(text, 0)
    assert not is_sentence_start(text, text.index("Watson"))


# -- ranking ----------------------------------------------------------------------------------

def test_score_formula_caps_specificity_and_gain():
    s = stat("dark", 33, spec=5.1, gain=2.0, name=0.0)
    expected = 0.5 * 1.0 + 1.0 * 3.0 + 0.0 + 0.25 * math.log(33)
    assert term_score(s, CONFIG) == pytest.approx(expected)
    # a rare name outranks a frequent theme word once specificity is capped
    assert term_score(stat("Stampexax", 6, spec=3.5, gain=0.1), CONFIG) > term_score(s, CONFIG)


def test_parts_of_a_full_name_are_proposed_and_rare_full_names_extend_kept_names():
    stats = table(
        stat("Baisse Touley", 9), stat("Baisse", 9), stat("Touley", 9),          # parts never alone
        stat("Boujoa", 17), stat("Boujoa Fousseett", 1, spec=2.3), stat("Fousseett", 1, spec=2.3),
        stat("Prermiv Tower", 15, article=1.0), stat("Prermiv", 15), stat("Tower", 15, spec=0.2, generic=54),
        stat("Caves of Laempe", 12, article=1.0), stat("Caves", 12), stat("Laempe", 12),
        stat("Dorrik Lane", 1, spec=2.3), stat("Dorrik", 1, spec=2.3), stat("Lane", 1, spec=2.3),
    )
    ranked = {c.term: c for c in rank_terms(stats, CONFIG, with_generic=True, common_words=set())}
    assert {"Baisse Touley", "Baisse", "Touley", "Boujoa", "Boujoa Fousseett", "Fousseett", "Prermiv Tower",
            "Caves of Laempe"} == set(ranked)
    assert ranked["Baisse"].why == "ranked"    # eligible itself; kept although only inside "Baisse Touley"
    assert ranked["Fousseett"].why == "name part" and ranked["Boujoa Fousseett"].why == "name extension"
    # "Prermiv" and "Caves" only occur inside kept place names that are not personal names: dropped;
    # "Dorrik Lane" (once) extends no kept name: not proposed
    assert ranked["Prermiv Tower"].why == "ranked"
    scores = [c.score for c in ranked.values()]
    assert list(ranked) == [c.term for c in sorted(ranked.values(), key=lambda c: (-c.score, c.term))]
    assert scores == sorted(scores, reverse=True)


def test_fragments_and_possessives_never_reach_the_ranking():
    stats = table(stat("Vrouth", 109), stat("Vrouth's", 9), stat("Vrouth Ziarloov", 37), stat("Ziarloov", 37),
                  stat("find", 20, spec=0.3, name=0.0, generic=40), stat("Ziarloov find", 5),
                  stat("Vrouth Ziarloov find", 5, gain=2.7))
    terms = [c.term for c in rank_terms(stats, CONFIG, with_generic=True, common_words={"find"})]
    assert sorted(terms) == ["Vrouth", "Vrouth Ziarloov", "Ziarloov"]


def test_lowercase_phrases_need_every_word_specific_and_names_only_one():
    stats = table(stat("dark place", 10, name=0.0), stat("dark", 33, name=0.0),
                  stat("place", 10, spec=0.1, name=0.0, generic=50),
                  stat("Prermiv Tower", 15), stat("Prermiv", 15, article=0.0), stat("Tower", 15, spec=0.2))
    terms = {c.term for c in rank_terms(stats, CONFIG, with_generic=True, common_words={"dark", "place"})}
    assert "dark place" not in terms and "dark" in terms
    assert "Prermiv Tower" in terms


# -- alternatives -----------------------------------------------------------------------------

def test_fallback_borrows_alternatives_of_the_same_kind():
    proposals = {"Vrouth": ["Tom", "Sarah"], "Kremar": ["Tom", "Peter"], "Virva Crown": ["the crown"],
                 "spell": ["word"], "Stampexax": [], "Lake of Pepraor": []}
    assert fallback_alternatives("Stampexax", proposals, 2) == ["Tom", "Sarah"]   # one-word names
    assert fallback_alternatives("Lake of Pepraor", proposals, 3) == ["the crown"]  # multi-word names
    assert fallback_alternatives("gloomwisps", {"spell": ["word"], "Vrouth": ["Tom"]}, 3) == ["word"]
    assert fallback_alternatives("gloomwisps", {"Vrouth": ["Tom"]}, 3) == ["Tom"]    # any kind as a last resort
    assert fallback_alternatives("gloomwisps", {"gloomwisps": []}, 3) == []


def _word_tokenizer(texts):
    words = sorted({w for t in texts for w in t.replace(".", " . ").split()})
    vocab = {"<s>": 0, "<unk>": 1, ".": 2, **{w: i + 3 for i, w in enumerate(w for w in words if w != ".")}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                     pre_tokenizers.Punctuation()])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", unk_token="<unk>", pad_token="<s>")


def test_terms_without_alternatives_in_context_borrow_instead_of_being_dropped(monkeypatch):
    story = ("Then Quilla met Dorrik at Zorvath. Later Quilla saw Dorrik near Zorvath. "
             "Soon Quilla told Dorrik about Zorvath. Then Quilla and Dorrik left Zorvath.")
    target = [story, story]
    generic = ["Then Tom met Sam at home. Later Tom saw Sam near home. Soon Tom told Sam about work."]
    tokenizer = _word_tokenizer(target + generic)
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                         vocab_size=len(tokenizer), max_position_embeddings=128)
    base, reinforced = LlamaForCausalLM(config).eval(), LlamaForCausalLM(config).eval()

    def only_first_has_context_alternatives(base_model, tok, docs, occurrences, allowed, cfg, common=frozenset()):
        terms = list(occurrences)
        return {t: (["Tom"] if t == terms[0] else []) for t in terms}

    monkeypatch.setattr(discovery, "propose_alternatives", only_first_has_context_alternatives)
    result = discovery.discover_anchors(base, reinforced, tokenizer, target, generic,
                                        DiscoveryConfig(top=10, min_gain=-100.0))
    terms = [c.term for c in result.candidates]
    assert {"Quilla", "Dorrik", "Zorvath"} <= set(terms)
    assert result.candidates[0].alternatives_from == "context"
    for candidate in result.candidates[1:]:
        assert candidate.alternatives == ["Tom"] and candidate.alternatives_from == "fallback"
    assert result.anchors == {t: ["Tom"] for t in terms}
