"""Quantization attack: quantize the weights to 8 or 4 bits and evaluate again.

Unlearning by gradient methods moves the weights only a little; rounding them to a coarse
grid can undo that move and bring the forgotten answers back (arXiv 2410.16454: 4-bit
quantization raised the forgotten knowledge a model retained from 21 % to 83 %). The
attack quantizes an in-memory copy of each model (the files on disk are never touched),
runs the ordinary evaluation (:func:`obliviate.eval.evaluator.evaluate`: QA, truth ratio,
MIA, familiarity) and keeps a few of its numbers per bit width. The retain model is
quantized and evaluated the same way (its numbers are the floor) and serves as the
reference of the others at the same width (forget quality, PrivLeak).

Backend (``QuantizeConfig.backend``):

* ``quanto`` (``auto`` picks it on CPU): optimum-quanto, maintained by Hugging Face, pure PyTorch,
  runs on CPU and CUDA in float32 and quantizes any ``nn.Linear`` (torchao is not installed
  here, and its int4 weight-only path targets the tinygemm kernels: CUDA, or the
  ``Int4CPULayout`` with bfloat16 activations). ``quantize(model,
  weights=qint8|qint4, exclude=["lm_head"])`` then ``freeze``: int8 is symmetric per output
  channel (absmax); int4 is affine (scale and shift) per group of up to 128 input columns,
  per output channel when a row is too short to group (quanto's defaults). 8-bit models
  keep quanto's ``QLinear`` modules. **Fallback for 4 bits**: quanto's int4 tensors fail
  under ``torch.inference_mode`` ("Cannot set version_counter for inference tensor",
  optimum-quanto issue #304, closed unfixed), which the scoring engine and greedy generation
  use; so each int4 ``QLinear`` is replaced by a plain ``nn.Linear`` holding its dequantized
  weight, i.e. exactly the int4 grid values (at most 16 distinct values per group) that
  quanto's own CPU fallback computes with. The numbers are those of the quantized model.
* ``bitsandbytes`` (CUDA only, optional import; ``auto`` picks it for a model on CUDA when the
  package is installed): the model is saved to a temporary folder
  and reloaded with ``BitsAndBytesConfig`` (LLM.int8() for 8 bits, NF4 for 4 bits), as
  transformers does. Not exercised by the tests (no CUDA here).

The output head (``lm_head``) stays in full precision, as transformers' quantizers keep it.
"""

from __future__ import annotations

import copy
import logging
import tempfile
from dataclasses import dataclass, field
from typing import Sequence

import torch

from obliviate.errors import UserError
from obliviate.eval.config import EvalConfig
from obliviate.eval.evaluator import evaluate
from obliviate.eval.fingerprint import model_state_fingerprint

log = logging.getLogger(__name__)

QUANT_BITS = (8, 4)
BACKENDS = ("auto", "quanto", "bitsandbytes")
UNQUANTIZED = "unquantized"
# attack key -> the evaluation summary keys it is read from (first present wins: the
# evaluation's names are being aligned with open-unlearning's)
METRIC_SOURCES = {
    "forget_accuracy": ("forget_accuracy",),
    "forget_unique_accuracy": ("forget_unique_accuracy",),
    "retain_accuracy": ("retain_accuracy",),
    "forget_truth_ratio": ("forget_truth_ratio",),
    "forget_Q_A_Prob": ("forget_Q_A_Prob", "forget_prob"),
    "forget_quality": ("forget_quality",),
    "model_utility": ("model_utility",),
    "mia_loss": ("mia_loss",),
    "privleak": ("privleak",),
    "familiarity_completion": ("familiarity_completion",),
}


@dataclass
class QuantizeConfig:
    bits: list[int] = field(default_factory=lambda: list(QUANT_BITS))  # weight bit widths to try (8, 4)
    backend: str = "auto"             # auto (bitsandbytes on CUDA when installed, else quanto), quanto, bitsandbytes
    exclude: list[str] = field(default_factory=lambda: ["lm_head"])  # module name patterns kept in full precision
    unquantized: bool = True          # also evaluate the unquantized model: the attack's "before"


def validate_bits(bits: Sequence[int | str]) -> list[int]:
    """Bit widths as ints, in the given order, each once; anything but 4 or 8 is a UserError."""
    if not bits:
        raise UserError("no quantization bit width given: quantization bits must be 4 or 8")
    widths: list[int] = []
    for value in bits:
        try:
            width = int(str(value).strip())
        except ValueError:
            width = None
        if width not in QUANT_BITS:
            raise UserError(f"quantization bits must be 4 or 8, got {value!r}")
        if width not in widths:
            widths.append(width)
    return widths


def parse_bits(text: str) -> list[int]:
    """``"4,8"`` -> ``[4, 8]`` (the ``--quant-bits`` option)."""
    return validate_bits([part for part in text.split(",") if part.strip()])


def _bitsandbytes_installed() -> bool:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(backend: str, model) -> str:
    """``quanto`` or ``bitsandbytes``: ``auto`` takes bitsandbytes for a model on CUDA when it
    is installed, else quanto."""
    if backend not in BACKENDS:
        raise UserError(f"quantization backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    on_cuda = next(model.parameters()).device.type == "cuda"
    if backend == "auto":
        return "bitsandbytes" if on_cuda and _bitsandbytes_installed() else "quanto"
    if backend == "bitsandbytes":
        if not on_cuda:
            raise UserError("the bitsandbytes quantization backend needs the model on a CUDA device "
                            "(use --device cuda, or backend quanto on CPU)")
        if not _bitsandbytes_installed():
            raise UserError("the bitsandbytes quantization backend needs the bitsandbytes package "
                            "(pip install bitsandbytes), or use backend quanto")
    return backend


def _set_submodule(root: torch.nn.Module, name: str, module: torch.nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child, module)


def _dequantized_linear(qlinear) -> torch.nn.Linear:
    """A plain ``nn.Linear`` whose weight is ``qlinear``'s quantized weight, dequantized."""
    weight = qlinear.weight.dequantize().detach()
    linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=qlinear.bias is not None,
                             device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        linear.weight.copy_(weight)
        if qlinear.bias is not None:
            linear.bias.copy_(qlinear.bias.detach())
    return linear


def quantize_with_quanto(model, bits: int, exclude: Sequence[str] = ("lm_head",)):
    """A quantized deep copy of ``model`` (``model`` itself is not changed)."""
    from optimum.quanto import QLinear, freeze, qint4, qint8, quantize

    quantized = copy.deepcopy(model)
    quantize(quantized, weights=qint8 if bits == 8 else qint4, exclude=list(exclude) or None)
    freeze(quantized)
    if bits == 4:
        # quanto issue #304: int4 tensors break under torch.inference_mode (module docstring)
        for name, module in list(quantized.named_modules()):
            if isinstance(module, QLinear):
                _set_submodule(quantized, name, _dequantized_linear(module))
    quantized.eval()
    return quantized


def quantize_with_bitsandbytes(model, bits: int, exclude: Sequence[str] = ("lm_head",)):
    """``model`` saved and reloaded through transformers' bitsandbytes integration (CUDA)."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    device = next(model.parameters()).device
    if bits == 8:
        quantization = BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=list(exclude))
    else:
        quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                          bnb_4bit_compute_dtype=torch.float32, llm_int8_skip_modules=list(exclude))
    with tempfile.TemporaryDirectory(prefix="obliviate-bnb-") as folder:
        model.save_pretrained(folder)
        quantized = AutoModelForCausalLM.from_pretrained(folder, quantization_config=quantization,
                                                         device_map={"": device})
    quantized.eval()
    return quantized


def quantize_model(model, bits: int, backend: str = "auto", exclude: Sequence[str] = ("lm_head",)):
    """A copy of ``model`` with its linear weights quantized to ``bits`` (4 or 8)."""
    bits = validate_bits([bits])[0]
    if resolve_backend(backend, model) == "bitsandbytes":
        return quantize_with_bitsandbytes(model, bits, exclude)
    return quantize_with_quanto(model, bits, exclude)


def pick_metrics(summary: dict) -> dict:
    """The attack's numbers out of an evaluation summary (None when not computed)."""
    picked = {}
    for key, sources in METRIC_SOURCES.items():
        picked[key] = next((summary[s] for s in sources if summary.get(s) is not None), None)
    return picked


def _backend_version(backend: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    package = "bitsandbytes" if backend == "bitsandbytes" else "optimum-quanto"
    try:
        return f"{package} {version(package)}"
    except PackageNotFoundError:
        return package


def quantization_attack(models: dict, tokenizer, world, forget: str, config: QuantizeConfig = QuantizeConfig(),
                        eval_config: EvalConfig = EvalConfig()) -> dict:
    """Evaluate every model unquantized (optional) and at every bit width.

    ``models``: role -> model (``unlearned``, and ``retain`` / ``full`` when given). The
    retain model's evaluation at a width is the reference of the other models at that width.

    Returns ``{"backend", "bits", "excluded", "models": {role: {"unquantized"|"8"|"4": metrics}}}``.
    """
    widths = validate_bits(config.bits)
    first = next(iter(models.values()))
    backend = resolve_backend(config.backend, first)
    # the retain model first: it is the reference of the others
    order = sorted(models, key=lambda role: role != "retain")
    levels: list[int | None] = ([None] if config.unquantized else []) + list(widths)
    results: dict = {role: {} for role in models}
    references: dict[str, dict] = {}  # label -> the retain model's evaluation at that level
    for role in order:
        model = models[role]
        base_fingerprint = model_state_fingerprint(model)
        for bits in levels:
            label = UNQUANTIZED if bits is None else str(bits)
            log.info("quantization attack: %s model, %s", role, label)
            candidate = model if bits is None else quantize_model(model, bits, backend, config.exclude)
            fingerprint = base_fingerprint if bits is None else f"{base_fingerprint}:{backend}-int{bits}"
            evaluation = evaluate(candidate, tokenizer, world, forget, reference=references.get(label),
                                  config=eval_config, model_fingerprint=fingerprint)
            if role == "retain":
                references[label] = evaluation
            results[role][label] = pick_metrics(evaluation["summary"])
            del candidate
    return {"backend": _backend_version(backend), "bits": widths, "excluded": list(config.exclude),
            "models": {role: results[role] for role in models}}
