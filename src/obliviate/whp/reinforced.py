"""The reinforced model next to its baseline: the checks that the two can be compared token for
token (one vocabulary, one tokenizer), and loading a saved one. Training one is
``obliviate.whp.training.reinforce``."""

from __future__ import annotations

from pathlib import Path

from obliviate.errors import UserError
from obliviate.models.loading import check_vocab, load_model, load_tokenizer


def check_same_vocabulary(base_model, other_model, tokenizer, what: str = "reinforced model") -> None:
    base_vocab = base_model.get_output_embeddings().weight.shape[0]
    other_vocab = other_model.get_output_embeddings().weight.shape[0]
    if base_vocab != other_vocab:
        raise UserError(f"the {what} has a vocabulary of {other_vocab} tokens but the base model has {base_vocab}: "
                        "it must be the base model trained further, with the same tokenizer")
    check_vocab(other_model, tokenizer, where=what)


def load_reinforced(path: str | Path, base_model, tokenizer):
    """Load a saved reinforced model on the base model's device; UserError if it does not fit the base."""
    parameter = next(base_model.parameters())
    reinforced = load_model(path, device=parameter.device, dtype=parameter.dtype)
    check_same_vocabulary(base_model, reinforced, tokenizer)
    saved_tokenizer = Path(path) / "tokenizer.json"
    if saved_tokenizer.is_file():
        other = load_tokenizer(path)
        if other.get_vocab() != tokenizer.get_vocab():
            raise UserError(f"the reinforced model in {path} was saved with another tokenizer than the base model's")
    return reinforced
