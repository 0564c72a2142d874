"""Builders the sink tests share (tests/ is on sys.path under pytest): a word-level tokenizer
over toy QA items and a small Llama config for sink models."""

from __future__ import annotations

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, PreTrainedTokenizerFast

from obliviate.data.format import qa_text


def toy_tokenizer(items: list[dict]) -> PreTrainedTokenizerFast:
    """One token per word of the items' QA texts, plus pad/bos/eos/unk (ids 0-3)."""
    vocab = {"<pad>": 0, "<bos>": 1, "<eos>": 2, "<unk>": 3}
    pre = pre_tokenizers.Whitespace()
    for item in items:
        for word, _ in pre.pre_tokenize_str(qa_text(item["question"], item["answer"])):
            vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", bos_token="<bos>",
                                   eos_token="<eos>", unk_token="<unk>")


def small_llama(vocab_size: int, hidden: int = 32, intermediate: int = 64, layers: int = 2) -> LlamaConfig:
    return LlamaConfig(hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                       num_attention_heads=2, vocab_size=vocab_size, max_position_embeddings=64,
                       pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=True)
