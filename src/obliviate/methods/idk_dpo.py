"""IdkDPO: DPO that prefers an "I don't know" answer to the true forget answer.

``-mean(logsigmoid(b * ((lp(idk) - ref(idk)) - (lp(true) - ref(true)))))`` on summed
sequence log-probs, beta 0.1, plus the retain NLL. The refusals come from a fixed
list of templates, or from a user file (one refusal per line) via ``idk_path``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

from obliviate.errors import UserError
from obliviate.methods.data import encode_qa
from obliviate.methods.registry import UnlearnTask, register
from obliviate.methods.trainer import TrainerMethod, UnlearnConfig, UnlearnTrainer
from obliviate.train.losses import dpo_loss, sequence_logprobs

REFUSAL_TEMPLATES: tuple[str, ...] = (
    "I don't know.",
    "I'm not sure.",
    "I have no idea.",
    "I don't have that information.",
    "I can't answer that.",
    "That is unknown to me.",
    "I am not aware of that.",
    "I cannot say.",
    "I have no information about that.",
    "I don't know the answer to that.",
    "I'm afraid I don't know.",
    "Sorry, I don't know.",
    "I'm unable to answer that.",
    "I don't remember.",
    "That is not something I know.",
    "I have no knowledge of that.",
    "I could not tell you.",
    "I'm not able to say.",
    "No idea, I'm afraid.",
    "I really don't know.",
)


@dataclass
class IdkDPOConfig(UnlearnConfig):
    # micro (forget/retain unique accuracy from 1.00/0.97): 5e-4 x 40 -> 0.80/1.00 (barely
    # forgets; 5e-4 x 80 the same), 1e-3 x 40 -> 0.40/0.95
    lr: float = 1e-3
    max_steps: int = 40
    beta: float = 0.1
    retain_loss: str = "nll"
    retain_weight: float = 1.0
    idk_path: str | None = None     # text file, one refusal per line (replaces the built-in templates)


def load_refusals(path: str | None) -> list[str]:
    if path is None:
        return list(REFUSAL_TEMPLATES)
    file = Path(path)
    if not file.is_file():
        raise UserError(f"refusal file not found: {file}")
    try:
        refusals = [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise UserError(f"refusal file {file} is not UTF-8 text") from None
    if not refusals:
        raise UserError(f"refusal file {file} holds no refusals (one per line expected)")
    return refusals


def refusal_for(item: dict, refusals: list[str]) -> str:
    """A refusal chosen by a stable hash of the item id (same on every process and run)."""
    return refusals[zlib.crc32(str(item["id"]).encode()) % len(refusals)]


class IdkDPOTrainer(UnlearnTrainer):
    def parts_to_forward(self) -> list[str]:
        return ["idk", "forget"] + (["retain"] if self.uses_retain() else [])

    def forget_loss(self, model, inputs, logits):
        ref = self.part_logits(model, inputs, ["idk", "forget"], reference=True)
        chosen, _ = sequence_logprobs(logits["idk"], inputs["idk"]["labels"])
        rejected, _ = sequence_logprobs(logits["forget"], inputs["forget"]["labels"])
        ref_chosen, _ = sequence_logprobs(ref["idk"], inputs["idk"]["labels"])
        ref_rejected, _ = sequence_logprobs(ref["forget"], inputs["forget"]["labels"])
        return dpo_loss(chosen, rejected, ref_chosen, ref_rejected, self.method_config.beta)


@register
class IdkDPO(TrainerMethod):
    name = "idk_dpo"
    config_class = IdkDPOConfig
    summary = "DPO preferring an 'I don't know' answer over the true forget answer, plus retain NLL"
    trainer_class = IdkDPOTrainer

    def needs_reference(self) -> bool:
        return True

    def training_parts(self, tokenizer, task: UnlearnTask) -> dict[str, list[dict]]:
        if self.config.forget_data != "qa":
            raise UserError("idk_dpo needs QA items to forget (forget_data=qa)")
        refusals = load_refusals(self.config.idk_path)
        parts = super().training_parts(tokenizer, task)
        # "idk" and "forget" have the same length, so PairedDataset keeps them aligned
        parts["idk"] = encode_qa(tokenizer, task.forget_items, [refusal_for(item, refusals) for item in task.forget_items],
                                 max_length=self.config.max_length, fmt=task.qa_format)
        return parts
