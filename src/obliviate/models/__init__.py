"""Model loading, tiny presets, and the native sink architecture."""

from obliviate.models.loading import load_model, load_tokenizer, load_model_and_tokenizer, save_model

__all__ = ["load_model", "load_tokenizer", "load_model_and_tokenizer", "save_model"]
