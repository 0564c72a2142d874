"""WHP translation: anchors on token boundaries, position maps and the consistency rules,
checked on hand-made blocks whose expected values are written out by hand."""

from __future__ import annotations

import json

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from obliviate.errors import UserError
from obliviate.whp.anchors import AnchorMatcher, TokenIndex
from obliviate.whp.translation import translate_document, translate_documents
from obliviate.world.anchors import load_anchors, validate_anchors

WORDS = ("<pad> <s> </s> Harry met Ron . said my name is Jon Tom Ben Kellinmoor Academy the old school Stowe today "
         "and was big we went to a b c d e f g h The").split()


def word_tokenizer(with_specials: bool = False):
    """One token per whitespace-separated word: positions can be computed by hand."""

    vocab = {w: i for i, w in enumerate(WORDS)}
    vocab["<unk>"] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    specials = {"bos_token": "<s>", "eos_token": "</s>"} if with_specials else {}
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", **specials)


@pytest.fixture(scope="module")
def tok():
    return word_tokenizer()


def ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def test_paper_rule_leaves_repeated_anchor_prediction_untrained_and_forbids_translation(tok):
    text = "Harry met Ron . Harry said my name is Harry"
    [block] = translate_document(text, tok, {"Harry": ["Jon"]})     # the default rule
    assert block.original_ids == ids(tok, text)
    assert block.translated_ids == ids(tok, "Jon met Ron . Jon said my name is Jon")
    assert block.position_map == list(range(10))
    # positions 3 and 8 predict the 2nd and 3rd "Harry"; 9 is the block's last position
    assert block.train_mask == [True, True, True, False, True, True, True, True, False, False]
    jon = tok.convert_tokens_to_ids("Jon")
    assert block.forbidden == [[jon]] * 10          # "Jon" is used from position 0 on
    assert [r.repeated for r in block.replacements] == [False, True, True]


def test_repeated_anchor_prediction_trained_with_anchor_and_translation_forbidden(tok):
    text = "Harry met Ron . Harry said my name is Harry"
    blocks, stats = translate_documents([text], tok, {"Harry": ["Jon"]}, train_repeated_anchor_predictions=True)
    [block] = blocks
    assert block.translated_ids == ids(tok, "Jon met Ron . Jon said my name is Jon")
    # positions 3 and 8 (predicting the 2nd and 3rd "Harry") are trained now; 9 is the block's last
    assert block.train_mask == [True] * 9 + [False]
    harry, jon = tok.convert_tokens_to_ids(["Harry", "Jon"])
    # there the label may be neither the anchor nor its translation; elsewhere only "Jon" is forbidden
    expected = [[jon]] * 10
    expected[3] = expected[8] = sorted([harry, jon])
    assert block.forbidden == expected
    assert stats.translated == 3 and stats.repeated == 2


def test_repeated_anchor_forbids_its_first_token_even_where_the_text_uses_it(tok):
    # "Kellinmoor" alone is ordinary text here (only "Kellinmoor Academy" is an anchor) and so is "old":
    # the text-token exemption spares "old" everywhere, but not the anchor's own token where it repeats
    text = "Kellinmoor was old and Kellinmoor Academy the Kellinmoor Academy c"
    [block] = translate_document(text, tok, {"Kellinmoor Academy": ["old school"]},
                                 train_repeated_anchor_predictions=True)
    assert block.translated_ids == ids(tok, "Kellinmoor was old and old school the old school c")
    assert block.position_map == [0, 1, 2, 3, -1, 5, 6, -1, 8, 9]
    # 4 and 7 lie inside the anchors, 9 is last; 6 predicts the repeated anchor and is trained
    assert block.train_mask == [True, True, True, True, False, True, True, False, True, False]
    kellinmoor = tok.convert_tokens_to_ids("Kellinmoor")
    assert block.forbidden == [[]] * 6 + [[kellinmoor]] + [[]] * 3


def test_multi_token_anchor_maps_last_token_to_translation_last_token(tok):
    text = "we went to Kellinmoor Academy today and Kellinmoor was big"
    anchors = {"Kellinmoor Academy": ["the old school"], "Kellinmoor": ["Stowe"]}
    [block] = translate_document(text, tok, anchors)
    assert block.translated_ids == ids(tok, "we went to the old school today and Stowe was big")
    assert block.position_map == [0, 1, 2, -1, 5, 6, 7, 8, 9, 10]
    # position 2 predicts the anchor (trained: first occurrence), 3 is inside it, 9 is last
    assert block.train_mask == [True, True, True, False, True, True, True, True, True, False]
    the, stowe = tok.convert_tokens_to_ids(["the", "Stowe"])
    assert block.forbidden[:3] == [[], [], []]
    assert block.forbidden[3:7] == [[the]] * 4
    assert block.forbidden[7:] == [sorted([the, stowe])] * 3
    spans = [(r.term, r.original_span, r.translated_span) for r in block.replacements]
    assert spans == [("Kellinmoor Academy", (3, 4), (3, 5)), ("Kellinmoor", (7, 7), (8, 8))]


def test_translation_token_the_text_itself_uses_is_not_forbidden(tok):
    text = "the Kellinmoor Academy was big"
    anchors = {"Kellinmoor Academy": ["the old school"]}
    the = tok.convert_tokens_to_ids("the")
    [spared] = translate_document(text, tok, anchors)
    assert all(the not in banned for banned in spared.forbidden)
    [strict] = translate_document(text, tok, anchors, spare_text_tokens=False)
    assert strict.forbidden == [[], [the], [the], [the], [the]]


def test_block_edges(tok):
    anchors = {"Kellinmoor Academy": ["the old school"]}
    # 'a b c' + a 2->3 token anchor does not fit 4 tokens: the anchor opens the next block
    blocks = translate_document("a b c Kellinmoor Academy d e", tok, anchors, block_size=4)
    assert [b.original_ids for b in blocks] == [ids(tok, "a b c"), ids(tok, "Kellinmoor Academy d")]
    first, second = blocks
    assert first.translated_ids == first.original_ids and first.train_mask == [True, True, False]
    assert second.translated_ids == ids(tok, "the old school d")
    assert second.position_map == [-1, 2, 3]
    assert second.train_mask == [False, True, False]   # the anchor's own prediction lies in the block before
    # the trailing 'e' alone (1 token) gives no trainable position and is dropped

    # an anchor that ends a block; the next block starts fresh (nothing forbidden, not 'repeated')
    blocks = translate_document("a b Harry c Harry d", tok, {"Harry": ["Jon"]}, block_size=3)
    assert [b.translated_ids for b in blocks] == [ids(tok, "a b Jon"), ids(tok, "c Jon d")]
    assert blocks[0].train_mask == [True, True, False]
    jon = tok.convert_tokens_to_ids("Jon")
    assert blocks[1].train_mask == [True, True, False]
    assert blocks[1].forbidden == [[], [jon], [jon]]
    assert not blocks[1].replacements[0].repeated


def test_anchor_longer_than_a_block_is_left_untranslated(tok):
    blocks = translate_document("a Kellinmoor Academy b", tok, {"Kellinmoor Academy": ["the old school"]},
                                block_size=2)
    assert [b.original_ids for b in blocks] == [ids(tok, "a Kellinmoor"), ids(tok, "Academy b")]
    assert all(b.translated_ids == b.original_ids and not b.replacements for b in blocks)


def test_one_alternative_per_block_deterministic_given_seed(tok):
    text = " ".join(["Harry met Ron ."] * 24)
    anchors = {"Harry": ["Jon", "Tom", "Ben"]}

    def choices(seed):
        blocks, stats = translate_documents([text], tok, anchors, block_size=8, seed=seed)
        per_block = [{r.alternative for r in b.replacements} for b in blocks]
        assert all(len(c) == 1 for c in per_block)      # one alternative inside a block
        assert stats.translated == 24 and stats.blocks == 12
        return [c.pop() for c in per_block]

    assert choices(0) == choices(0)
    assert choices(0) != choices(1)
    assert len(set(choices(0))) > 1                      # blocks draw independently


def test_two_terms_avoid_sharing_a_translation(tok):
    [block] = translate_document("Harry met Ron", tok, {"Harry": ["Jon"], "Ron": ["Jon", "Ben"]})
    assert block.translated_ids == ids(tok, "Jon met Ben")


def test_bos_eos_framing_shifts_positions():
    tok = word_tokenizer(with_specials=True)
    [block] = translate_document("Harry met Ron", tok, {"Harry": ["Jon"]})
    assert block.original_ids == [tok.bos_token_id] + ids(tok, "Harry met Ron") + [tok.eos_token_id]
    assert block.translated_ids == [tok.bos_token_id] + ids(tok, "Jon met Ron") + [tok.eos_token_id]
    assert block.train_mask == [True, True, True, True, False]   # position 0 (<s>) predicts the anchor


# -- byte-level BPE: leading spaces, multi-token terms, capitalisation -------------------------

@pytest.fixture(scope="module")
def bpe():
    corpus = ["Tom met Ben at the school. The school was old. Anna said hello to Tom."] * 20
    corpus += ["Zorblax went to Kellinmoor Academy. Kellinmoor Academy stood tall."] * 3
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def test_bpe_translation_equals_tokenizing_the_translated_text(bpe):
    anchors = {"Zorblax": ["Tom"], "Kellinmoor Academy": ["the school"]}
    text = "Kellinmoor Academy stood tall. Zorblax went to Kellinmoor Academy, said Zorblax."
    [block] = translate_document(text, bpe, anchors)
    expected = "The school stood tall. Tom went to the school, said Tom."   # sentence start capitalised
    eos = [bpe.eos_token_id]
    assert block.translated_ids == ids(bpe, expected) + eos
    assert block.original_ids == ids(bpe, text) + eos
    zorblax = ids(bpe, " Zorblax")
    assert len(zorblax) > 1                                         # a multi-token anchor
    assert bpe.convert_ids_to_tokens(zorblax[0]) == "Ġ"             # BPE could not merge the space with "Z":
    second = block.replacements[1]                                  # the lone space token joins the anchor
    assert bpe.convert_ids_to_tokens(block.original_ids[second.original_span[0]]) == "Ġ"
    tom, space = ids(bpe, " Tom")[0], zorblax[0]
    last = len(block.original_ids) - 1
    assert tom in block.forbidden[last] and space not in block.forbidden[last]
    # every anchor's last original token maps to its translation's last token
    for r in block.replacements:
        assert block.position_map[r.original_span[1]] == r.translated_span[1]
        assert all(block.position_map[k] == -1 for k in range(r.original_span[0], r.original_span[1]))
    # non-anchor tokens keep their ids across the map
    for k, mapped in enumerate(block.position_map):
        if mapped >= 0 and not any(r.original_span[0] <= k <= r.original_span[1] for r in block.replacements):
            assert block.translated_ids[mapped] == block.original_ids[k]


def test_anchor_tokenized_differently_with_and_without_leading_space(bpe):
    anchors = {"Zorblax": ["Tom"]}
    [block] = translate_document("Zorblax met Zorblax", bpe, anchors)
    first, second = block.replacements
    assert bpe.convert_ids_to_tokens(block.translated_ids[first.translated_span[0]]) == "Tom"
    assert bpe.convert_ids_to_tokens(block.translated_ids[second.translated_span[0]]) == "ĠTom"
    assert block.translated_ids == ids(bpe, "Tom met Tom") + [bpe.eos_token_id]


# -- matching on token boundaries ------------------------------------------------------------

def test_matcher_longest_first_and_whole_words():
    matcher = AnchorMatcher(["Harry", "Harry Potter", "Pot"])
    assert matcher.find("Harry Potter met Harry, not Harrys or Potter.") == [
        (0, 12, "Harry Potter"), (17, 22, "Harry")]


def test_occurrence_not_on_token_boundaries_is_skipped():
    text = "(Harry) Harry"
    offsets = [(0, 3), (3, 7), (7, 13)]          # "(Ha", "rry)", " Harry" (space kept in the token)
    found, skipped = AnchorMatcher(["Harry"]).find_aligned(text, offsets)
    assert skipped == 1
    assert [(o.start, o.first_token, o.last_token) for o in found] == [(8, 2, 2)]
    assert TokenIndex(text, offsets).align(8, 12) is None   # ends inside a token


# -- dictionaries ----------------------------------------------------------------------------

def test_validate_anchors_accepts_strings_and_rejects_empty_mappings():
    assert validate_anchors({"Harry": "Jon", "Ron": ["Ben", " Ben ", "Tom"]}) == {"Harry": ["Jon"],
                                                                                  "Ron": ["Ben", "Tom"]}
    for bad in ({"Harry": []}, {"Harry": [""]}, {"Harry": None}, {"": ["Jon"]}, {"Harry": [3]}, ["Harry"], {}):
        with pytest.raises(UserError):
            validate_anchors(bad)


def test_load_anchors_bad_files(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"Harry": ["Jon"')
    with pytest.raises(UserError, match="not valid JSON"):
        load_anchors(broken)
    empty_term = tmp_path / "nothing.json"
    empty_term.write_text(json.dumps({"Harry": ["Jon"], "Ron": []}))
    with pytest.raises(UserError, match="'Ron' maps to no alternative"):
        load_anchors(empty_term)
    with pytest.raises(UserError, match="not found"):
        load_anchors(tmp_path / "missing.json")
