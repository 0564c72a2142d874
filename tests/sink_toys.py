"""Builders the sink tests share (tests/ is on sys.path under pytest): a word-level tokenizer
over toy QA items, a small Llama config, and a sink model trained on the items."""

from __future__ import annotations

from collections import defaultdict

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, PreTrainedTokenizerFast

from obliviate.data.format import qa_text
from obliviate.models.sinks import SinkForCausalLM, sink_config_from_llama


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


def encode_items(tokenizer, items):
    rows = [[tokenizer.bos_token_id] + tokenizer(qa_text(i["question"], i["answer"]), add_special_tokens=False)["input_ids"]
            + [tokenizer.eos_token_id] for i in items]
    length = max(map(len, rows))
    ids = torch.tensor([r + [tokenizer.pad_token_id] * (length - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (length - len(r)) for r in rows])
    return ids, mask, torch.tensor([i["source_id"] for i in items])


def train_toy(items, tokenizer, steps: int = 300, **knobs) -> SinkForCausalLM:
    """A sink model trained on the items' QA texts with their source ids (seconds), router fitted."""
    llama = small_llama(len(tokenizer), hidden=64, intermediate=256)
    torch.manual_seed(0)
    model = SinkForCausalLM(sink_config_from_llama(llama, **knobs))
    ids, mask, sources = encode_items(tokenizer, items)
    labels = ids.masked_fill(mask == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        loss = model(ids, attention_mask=mask, labels=labels, source_ids=sources).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    texts = defaultdict(list)
    for item in items:
        texts[item["source_id"]].append(qa_text(item["question"], item["answer"]))
    model.fit_router(texts, tokenizer)
    return model
