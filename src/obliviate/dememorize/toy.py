"""A tiny model that memorises short review documents: the setting of the dememorization
benchmark and tests (what RL dememorization must make a model stop reciting)."""

from __future__ import annotations

from dataclasses import dataclass

from obliviate.icul.models import TinyLlamaSpec, fit, new_model
from obliviate.tokenizer import train_tokenizer
from obliviate.train.data import tokenize_documents
from obliviate.world.classification import generate_reviews


@dataclass
class MemorisationToy:
    tokenizer: object
    docs: list[dict]          # {"doc_id", "source_id", "text"}: two generated reviews each

    def train(self, subset: list[dict], epochs: float = 120, seed: int = 0):
        """A 64-wide 2-layer Llama trained on ``subset`` until it recites it."""
        spec = TinyLlamaSpec(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                             max_position_embeddings=128)
        columns = tokenize_documents(subset, self.tokenizer, 128)
        examples = [{"input_ids": i, "labels": l} for i, l in zip(columns["input_ids"], columns["labels"])]
        return fit(new_model(self.tokenizer, spec, seed=seed), self.tokenizer, examples, epochs=epochs,
                   learning_rate=5e-3, batch_size=8, seed=seed)


def memorisation_toy(name: str, n_docs: int) -> MemorisationToy:
    """``n_docs`` documents of two generated reviews (seeded by ``name``) and a BPE tokenizer on them."""
    texts = [t for t, _ in generate_reviews(name, 2 * n_docs)]
    docs = [{"doc_id": f"d{i}", "source_id": i, "text": f"{texts[2 * i]} {texts[2 * i + 1]}"} for i in range(n_docs)]
    return MemorisationToy(train_tokenizer([d["text"] for d in docs], vocab_size=600), docs)
