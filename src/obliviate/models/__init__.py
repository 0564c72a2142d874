"""Every architecture the project builds or loads, and loading/saving them.

- :mod:`~obliviate.models.loading`: load / save any local causal LM (clear errors for user mistakes).
- :mod:`~obliviate.models.presets`: tiny Llama sizes matching the world presets.
- :mod:`~obliviate.models.sinks`: the native sink architecture (its pieces are the ``sink_*`` modules
  and ``router``).
- :mod:`~obliviate.models.in_context`: a model that unlearns in context (a base model plus a stored
  ICUL context).
- :mod:`~obliviate.models.lora`: optional LoRA adapters; :mod:`~obliviate.models.hf_compat`: the
  transformers API generation in use.
"""

from obliviate.models.loading import load_model, load_model_and_tokenizer, load_tokenizer, save_model

__all__ = ["load_model", "load_tokenizer", "load_model_and_tokenizer", "save_model"]
