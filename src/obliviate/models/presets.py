"""Tiny Llama-architecture presets matching the world presets."""

from __future__ import annotations

from dataclasses import dataclass

from transformers import LlamaConfig


@dataclass(frozen=True)
class ModelPreset:
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    max_position_embeddings: int = 512


MODEL_PRESETS: dict[str, ModelPreset] = {
    "micro": ModelPreset(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4),
    # tiny matches micro's size: on 2 CPU cores it learns the tiny world's facts (1.00 greedy
    # accuracy on forget10 and retain) in 25 epochs, a few minutes; see README "Figures"
    "tiny": ModelPreset(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4),
    "small": ModelPreset(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4),
}


def llama_config(preset: str, tokenizer):
    """A LlamaConfig sized by ``preset`` for ``tokenizer``'s vocabulary."""
    spec = MODEL_PRESETS[preset]
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_attention_heads,
        max_position_embeddings=spec.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        rms_norm_eps=1e-5,
    )
