"""Load and save any local Hugging Face causal LM, with clear errors for user mistakes.

Importing this module registers the project's own model types with transformers' Auto
classes (the sink architecture and the in-context-unlearning wrapper), so saved models of
those types reload without remote code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

import obliviate.models.in_context  # noqa: F401  (registers obliviate_icul with the Auto classes)
import obliviate.models.sink_modeling  # noqa: F401  (registers obliviate_sinks with the Auto classes)
from obliviate.data.format import ChatOptions, resolve_chat_template
from obliviate.errors import UserError
from obliviate.io import atomic_directory, atomic_write_json


def weights_dtype_name(model) -> str:
    """The dtype of the model's weights as a name: ``float32``, ``bfloat16``, ..."""
    return str(next(model.parameters()).dtype).replace("torch.", "")


def check_model_dir(path: Path) -> None:
    """UserError unless ``path`` is a directory holding a config.json."""
    if not path.exists():
        raise UserError(f"model path does not exist: {path}")
    if not path.is_dir():
        raise UserError(f"model path is not a directory: {path}")
    if not (path / "config.json").is_file():
        raise UserError(f"{path} is not a Hugging Face model directory (no config.json)")


# Files a saved tokenizer consists of (any one is enough for AutoTokenizer to try).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "vocab.txt",
                   "tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "tekken.json")


def _has_tokenizer_files(path: Path) -> bool:
    return any((path / name).is_file() for name in TOKENIZER_FILES) or any(path.glob("*.tiktoken"))


def load_tokenizer(path: str | os.PathLike, trust_remote_code: bool = False):
    path = Path(path)
    if path.is_dir() and not _has_tokenizer_files(path):
        # AutoTokenizer would fall back to an EMPTY tokenizer for some model types (GPT-2)
        raise UserError(f"no tokenizer in {path}: none of {', '.join(TOKENIZER_FILES[:4])}, ... is there; "
                        "save the tokenizer next to the model (tokenizer.save_pretrained(DIR))")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(f"no usable tokenizer in {path}: {str(exc).splitlines()[0]}") from None
    if not set(tokenizer.get_vocab()) - set(tokenizer.all_special_tokens):
        raise UserError(f"the tokenizer in {path} has an empty vocabulary (its vocabulary files are missing)")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | str | None:
    """``"auto"`` (the checkpoint's dtype), a torch dtype, or None (transformers' default: auto)."""
    if dtype is None or isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPE_CHOICES)}")
    return DTYPES[dtype]


def check_dtype_runs(model, path: Path | str = "") -> None:
    """A half-precision model on CPU runs one token forward: a torch build without fp16/bf16
    CPU kernels fails here with a clear message instead of deep inside an evaluation."""
    dtype = next(model.parameters()).dtype
    devices = {p.device.type for p in model.parameters()}
    if dtype not in (torch.float16, torch.bfloat16) or devices != {"cpu"}:
        return
    try:
        with torch.inference_mode():
            model(input_ids=torch.zeros((1, 1), dtype=torch.long))
    except (RuntimeError, NotImplementedError) as exc:
        name = str(dtype).replace("torch.", "")
        raise UserError(f"{name} is not supported on CPU by this torch build ({str(exc).splitlines()[0]}); "
                        f"load {path or 'the model'} with --dtype float32 (or bfloat16), or run on a GPU") from None


# device map strategies (accelerate places the model itself); anything else names devices
DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")


def _unavailable(device: torch.device) -> str | None:
    """Why ``device`` is not on this machine, or None if it is (or torch knows no check for it)."""
    if device.type == "cuda":
        if not torch.backends.cuda.is_built():
            return f"this torch build ({torch.__version__}) has no CUDA support"
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            return "no CUDA GPU is visible"
        if device.index is not None and device.index >= count:
            return f"there {'is' if count == 1 else 'are'} only {count} CUDA device(s) (cuda:0..cuda:{count - 1})"
    elif device.type == "mps" and not torch.backends.mps.is_available():
        return "MPS is not available"
    elif device.type == "xpu":
        xpu = getattr(torch, "xpu", None)
        count = xpu.device_count() if xpu is not None and xpu.is_available() else 0
        if count == 0:
            return "no XPU is visible"
        if device.index is not None and device.index >= count:
            return f"there {'is' if count == 1 else 'are'} only {count} XPU device(s)"
    return None


def _device_problem(device: str | int | torch.device, unknown_ok: bool = False) -> str | None:
    """What is wrong with ``device`` on this machine (None: nothing torch can tell up front).
    ``unknown_ok``: a name torch does not parse is left to the caller (device maps)."""
    if isinstance(device, int) and not isinstance(device, bool):
        # a bare index names a device of the machine's accelerator
        accelerator = getattr(torch, "accelerator", None)
        if accelerator is not None and not accelerator.is_available():
            return "is not available on this machine: it has no accelerator"
        return None
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        return None if unknown_ok else "is not a torch device (e.g. cpu, cuda, cuda:1, mps)"
    reason = _unavailable(resolved)
    return None if reason is None else f"is not available on this machine: {reason}"


def check_device(device: str | int | torch.device | None) -> None:
    """UserError (one line) unless ``device`` exists on this machine; None passes."""
    problem = None if device is None else _device_problem(device)
    if problem is not None:
        raise UserError(f"device {device!r} {problem}; run on the CPU (--device cpu)")


def check_device_map(device_map: Any) -> None:
    """UserError (one line) if a device map names a device this machine lacks."""
    if device_map is None or (isinstance(device_map, str) and device_map in DEVICE_MAP_STRATEGIES):
        return
    placements = device_map.values() if isinstance(device_map, dict) else [device_map]
    for placement in placements:
        problem = None if placement == "disk" else _device_problem(placement, unknown_ok=True)
        if problem is not None:
            raise UserError(f"device map {device_map!r} places weights on {placement!r}, which {problem}; "
                            "run on the CPU (--device cpu, no device map)")


def _corrupt_weights(path: Path) -> Path | None:
    """The first safetensors file under ``path`` whose header does not read, if any."""
    for file in sorted(path.glob("*.safetensors")):
        try:
            with safe_open(str(file), framework="pt"):
                pass
        except (SafetensorError, OSError):
            return file
    return None


def load_model(
    path: str | os.PathLike,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    trust_remote_code: bool = False,
    device_map: Any = None,
):
    """Load a causal LM from a local directory (safetensors preferred)."""
    path = Path(path)
    check_model_dir(path)
    try:
        config = AutoConfig.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"cannot read model config in {path}: {str(exc).splitlines()[0]}") from None
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    dtype = resolve_dtype(dtype)
    if device is not None and device_map is not None:
        raise UserError("give either a device or a device map, not both")
    check_device(device)
    check_device_map(device_map)
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
    except SafetensorError as exc:
        message = str(exc).splitlines()[0]
        corrupt = _corrupt_weights(path)
        if corrupt is not None:
            raise UserError(f"model weights {corrupt} are truncated or corrupt ({message}); "
                            "save or copy the model again") from None
        raise UserError(f"cannot load model weights from {path}: {message}") from None
    except (ImportError, RuntimeError) as exc:
        if device_map is None:
            raise
        # e.g. device_map="auto" without accelerate, or a map naming devices that are not there
        raise UserError(f"cannot place {path} with device map {device_map!r}: {str(exc).splitlines()[0]}") from None
    if device is not None:
        model.to(device)
    model.eval()
    check_dtype_runs(model, path)
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


def save_model(model, tokenizer, out_dir: str | os.PathLike, run_config: dict | None = None,
               state_dict: dict | None = None) -> Path:
    """save_pretrained (safetensors) + tokenizer + the config used, written atomically;
    ``state_dict``: the weights to write instead of the model's own (a sharded model gathered whole)."""
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True, state_dict=state_dict)
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


def chat_template_for(model_dir: str | os.PathLike, choice: bool | None = None, tokenizer=None) -> bool:
    """Whether the QA of the model in ``model_dir`` goes through its chat template: the user's
    ``choice``, else what the model was trained or unlearned with (its ``obliviate_config.json``),
    else whether its tokenizer has one (an instruct model's does)."""
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model_dir)
    return resolve_chat_template(choice, tokenizer, read_run_config(model_dir).get("chat_template"))


def chat_options_for(model_dir: str | os.PathLike, options: ChatOptions = ChatOptions()) -> ChatOptions:
    """The chat template's system prompt and date: those given, else what the model was trained with."""
    return options.over(read_run_config(model_dir).get("chat_options"))
