"""The one place that knows which transformers API generation we run on.

transformers 5.24 renamed the KV-cache argument of every model forward from
``past_key_values`` to ``cache`` (the old name is still accepted with a warning, but a
custom model that forwards ``past_key_values`` while ``generate`` passes ``cache`` loses
its cache). Custom models and callers that drive a cache by hand go through here.
"""

from __future__ import annotations

import inspect

from transformers.models.llama.modeling_llama import LlamaModel

CACHE_ARG = "cache" if "cache" in inspect.signature(LlamaModel.forward).parameters else "past_key_values"


def cache_kwargs(cache) -> dict:
    """``{CACHE_ARG: cache}``: the cache under the name the installed transformers reads."""
    return {CACHE_ARG: cache}


def pick_cache(cache=None, past_key_values=None):
    """The cache a forward received under either name (the new one wins)."""
    return cache if cache is not None else past_key_values


def output_cache(outputs):
    """The cache a model output carries, whatever the field is called."""
    value = getattr(outputs, "cache", None)
    return value if value is not None else getattr(outputs, "past_key_values", None)
