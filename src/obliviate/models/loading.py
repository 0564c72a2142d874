"""Load and save any local Hugging Face causal LM, with clear errors for user mistakes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from obliviate.errors import UserError
from obliviate.io import atomic_directory, atomic_write_json


def _ensure_registered() -> None:
    # The sink architecture and the in-context-unlearning wrapper register themselves
    # with the Auto classes on import (no remote code needed to reload them).
    import obliviate.icul.wrapper  # noqa: F401
    import obliviate.models.sinks  # noqa: F401


def _check_model_dir(path: Path) -> None:
    if not path.exists():
        raise UserError(f"model path does not exist: {path}")
    if not path.is_dir():
        raise UserError(f"model path is not a directory: {path}")
    if not (path / "config.json").is_file():
        raise UserError(f"{path} is not a Hugging Face model directory (no config.json)")


def load_tokenizer(path: str | os.PathLike, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    path = Path(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(f"no usable tokenizer in {path}: {str(exc).splitlines()[0]}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    path: str | os.PathLike,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    trust_remote_code: bool = False,
    device_map: Any = None,
):
    """Load a causal LM from a local directory (safetensors preferred)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    _ensure_registered()
    path = Path(path)
    _check_model_dir(path)
    try:
        config = AutoConfig.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"cannot read model config in {path}: {str(exc).splitlines()[0]}") from None
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if isinstance(dtype, str):
        dtype = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                 "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}.get(dtype, dtype)
    if dtype is not None:
        kwargs["dtype"] = dtype
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), config=config, **kwargs)
    except ValueError as exc:
        message = str(exc).splitlines()[0]
        if "Unrecognized configuration class" in message or "AutoModelForCausalLM" in message:
            raise UserError(f"{path} holds a {type(config).__name__} model without a causal LM head") from None
        raise UserError(f"cannot load model from {path}: {message}") from None
    except OSError as exc:
        raise UserError(f"cannot load model weights from {path}: {str(exc).splitlines()[0]}") from None
    if device is not None and device_map is None:
        model.to(device)
    model.eval()
    return model


def check_vocab(model, tokenizer, where: str = "") -> None:
    """A tokenizer whose ids exceed the model's embedding table is a user mistake."""
    vocab = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > vocab:
        raise UserError(
            f"tokenizer has {len(tokenizer)} tokens but the model's embedding table has {vocab}"
            + (f" ({where})" if where else "")
            + ": they do not belong together"
        )


def load_model_and_tokenizer(path: str | os.PathLike, tokenizer_path: str | os.PathLike | None = None, **kwargs):
    model = load_model(path, **kwargs)
    tokenizer = load_tokenizer(tokenizer_path or path)
    check_vocab(model, tokenizer, where=str(path))
    return model, tokenizer


def save_model(model, tokenizer, out_dir: str | os.PathLike, run_config: dict | None = None) -> Path:
    """save_pretrained (safetensors) + tokenizer + the config used, written atomically."""
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        if run_config is not None:
            atomic_write_json(tmp / "obliviate_config.json", run_config)
    return out_dir


def read_run_config(model_dir: str | os.PathLike) -> dict:
    path = Path(model_dir) / "obliviate_config.json"
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))
