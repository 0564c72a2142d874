"""Optional LoRA for every trainer-based method (PEFT), merged back before saving."""

from __future__ import annotations

from dataclasses import dataclass

from obliviate.errors import UserError


@dataclass
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    # None: PEFT's default targets for the architecture (q_proj/v_proj for Llama).
    target_modules: list[str] | None = None


def apply_lora(model, settings: LoraSettings):
    """Wrap ``model`` in a PEFT LoRA adapter; only the adapter weights stay trainable."""
    # peft takes seconds to import and only runs with LoRA need it
    from peft import LoraConfig, TaskType, get_peft_model

    if settings.r < 1:
        raise UserError(f"lora_r must be at least 1, got {settings.r}")
    targets = list(settings.target_modules) if settings.target_modules else None
    config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=settings.r, lora_alpha=settings.alpha,
                        lora_dropout=settings.dropout, target_modules=targets)
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        message = str(exc).splitlines()[0]
        if "target_modules" in message or "not found in the base model" in message:
            linear = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                             if type(module).__name__ in ("Linear", "Conv1D")})
            raise UserError(
                f"LoRA target modules {targets or '(PEFT default)'} match no module of this "
                f"{type(model).__name__}; set lora_target_modules to some of: {', '.join(linear)}"
            ) from None
        raise


def is_peft_model(model) -> bool:
    from peft import PeftModel  # lazily, as in apply_lora

    return isinstance(model, PeftModel)


def merge_lora(model):
    """Fold the adapter into the base weights and return the plain Hugging Face model, every weight
    trainable again as after ``from_pretrained`` (PEFT leaves the base weights frozen)."""
    if not is_peft_model(model):
        return model
    return model.merge_and_unload().requires_grad_(True)
