"""In-context unlearning of QA items: the ICUL context for a world's forget split.

The classification recipe carries over with "label" read as "answer": a forget item is
shown with a wrong answer (one of its perturbed answers, which keep the template and
change the fact), followed by ``s`` retain items with their right answers, in the world's
QA document layout (``qa_text`` lines joined by a blank line)::

    Question: {forget q}\\nAnswer: {perturbed answer}\\n\\nQuestion: {q1}\\nAnswer: {a1}\\n\\n...{query}
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from obliviate.data.format import qa_prompt, qa_text
from obliviate.errors import UserError
from obliviate.icul.prompts import MODES
from obliviate.models.in_context import SELECTIONS, IculConfig, InContextUnlearningLM


@dataclass
class IculQAConfig:
    shots: int = 4                 # s: retain items with their right answers
    mode: str = "flip"             # flip (wrong answer) | correct | random (another item's wrong answer) | none
    selection: str = "matched"     # matched: forget items asked about in the row | all: every forget item
    max_matched: int = 4
    separator: str = "\n\n"        # between QA pairs, as in the world's QA documents
    seed: int = 0

    def validate(self) -> "IculQAConfig":
        if self.mode not in MODES:
            raise UserError(f"unknown ICUL mode {self.mode!r}; valid: {', '.join(MODES)}")
        if self.selection not in SELECTIONS:
            raise UserError(f"unknown ICUL selection {self.selection!r}; valid: {', '.join(SELECTIONS)}")
        if self.shots < 0 or self.max_matched < 1:
            raise UserError("shots must be >= 0 and max_matched >= 1")
        return self


def _ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def separator_ids(tokenizer, separator: str, probe: str = "Question") -> list[int]:
    """Tokens of ``separator`` as they occur before the next QA line (not at the end of a text)."""
    whole, tail = _ids(tokenizer, separator + probe), _ids(tokenizer, probe)
    if tail and whole[-len(tail):] == tail:
        return whole[: -len(tail)]
    return _ids(tokenizer, separator)


def build_qa_context(tokenizer, forget_items: Sequence[dict], retain_items: Sequence[dict], config: IculQAConfig,
                     max_length: int | None = None) -> dict:
    """The token-level context spec that :class:`~obliviate.models.in_context.IculConfig` stores."""
    config.validate()
    if not forget_items:
        raise UserError("in-context unlearning needs forget items; the forget split has none")
    rng = random.Random(f"icul-qa-{config.seed}")
    if config.shots > len(retain_items):
        raise UserError(f"shots={config.shots} is more than the {len(retain_items)} retain items available as "
                        "demonstrations")
    forget_questions = {item["question"] for item in forget_items}
    entries = []
    for item in forget_items:
        if config.mode == "none":
            break
        if config.mode == "flip":
            shown_item, answer = item, rng.choice(list(item["perturbed_answers"]))
        elif config.mode == "correct":
            shown_item, answer = item, item["answer"]
        else:  # random: another (retained) item with a wrong answer, in place of the forget item
            pool = [r for r in retain_items if r["question"] not in forget_questions]
            if not pool:
                raise UserError("mode 'random' needs retain items to flip")
            shown_item = rng.choice(pool)
            answer = rng.choice(list(shown_item["perturbed_answers"]))
        entries.append({"id": str(item["id"]), "trigger": _ids(tokenizer, qa_prompt(item["question"])),
                        "line": _ids(tokenizer, qa_text(shown_item["question"], answer))})
    demos = [_ids(tokenizer, qa_text(item["question"], item["answer"]))
             for item in rng.sample(list(retain_items), config.shots)]
    separator = separator_ids(tokenizer, config.separator)
    spec = {"bos_id": tokenizer.bos_token_id, "selection": config.selection, "max_matched": config.max_matched,
            "forget": entries, "demos": demos, "separator": separator,
            "settings": {"shots": config.shots, "mode": config.mode, "seed": config.seed,
                         "separator": config.separator}}
    if config.selection == "all" and max_length is not None:
        total = 1 + sum(len(e["line"]) + len(separator) for e in entries)
        if total > max_length // 2:
            raise UserError(f"the ICUL context of all {len(entries)} forget items is {total} tokens, more than half "
                            f"the model's {max_length}-token window: use selection=matched")
    return spec


def icul_model(model, tokenizer, forget_items: Sequence[dict], retain_items: Sequence[dict],
               config: IculQAConfig = IculQAConfig()):
    """Wrap ``model`` (weights untouched) with the ICUL context of ``forget_items``."""
    limit = getattr(model.config, "max_position_embeddings", None)
    spec = build_qa_context(tokenizer, forget_items, retain_items, config, limit)
    return InContextUnlearningLM(model, IculConfig(base_config=model.config.to_dict(), context=spec))
