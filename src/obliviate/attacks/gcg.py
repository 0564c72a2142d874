"""Budgeted greedy coordinate gradient (GCG) suffix search for forgotten answers.

One universal suffix of ``suffix_tokens`` tokens is inserted after the question
(``Question: {q}{suffix}\\nAnswer:``) and optimised to minimise the mean answer NLL of a
set of forget items (Zou et al. 2023): each iteration takes the gradient of that loss
with respect to the one-hot suffix tokens, keeps the ``top_k`` most promising tokens per
position, evaluates ``candidates`` single-token swaps drawn from them (seeded) with the
scoring engine, and keeps the best if it lowers the loss. The budget is fixed by
``suffix_tokens`` and ``iterations``.

The suffix is optimised on the relearn part of the forget split and graded on both parts:
recall and MIA with and without the suffix. The model's weights are never changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from obliviate.attacks.items import ItemSplit
from obliviate.attacks.measure import MeasureConfig, measure_format, measure_recall, membership_aucs
from obliviate.data.format import PLAIN, QAFormat
from obliviate.errors import UserError
from obliviate.eval.scoring import (
    EncodedPair,
    ScoringConfig,
    encode_pairs,
    model_device,
    model_max_length,
    pad_batch,
    pad_token_id,
    score_encoded,
)
from obliviate.train.losses import IGNORE_INDEX, sequence_logprobs

ANSWER_CUE = "\nAnswer:"
OPTIMISE_ON = ("relearn", "all")


@dataclass
class GCGConfig:
    suffix_tokens: int = 8            # token budget of the suffix
    iterations: int = 20              # iteration budget
    top_k: int = 32                   # candidate tokens kept per position from the gradient
    candidates: int = 64              # single-token swaps evaluated per iteration
    max_items: int = 32               # forget items the loss is averaged over
    optimise_on: str = "relearn"      # "relearn": optimise on the relearn part, grade on both parts; "all"
    init: str = " !"                  # initial suffix: this token repeated
    ascii_only: bool = True           # candidate tokens decode to printable ASCII without newlines
    mia: bool = True
    seed: int = 0


def validate_gcg(config: GCGConfig) -> None:
    if config.optimise_on not in OPTIMISE_ON:
        raise UserError(f"gcg optimise_on must be one of {', '.join(OPTIMISE_ON)}, got {config.optimise_on!r}")
    for name in ("suffix_tokens", "top_k", "candidates", "max_items"):
        if getattr(config, name) < 1:
            raise UserError(f"gcg {name} must be at least 1, got {getattr(config, name)}")
    if config.iterations < 0:
        raise UserError(f"gcg iterations must be >= 0, got {config.iterations}")


_SUFFIX_SLOT = "\u2063obliviate-suffix\u2063"


def insert_suffix(prompt: str, suffix: str) -> tuple[str, str]:
    """``(head, prompt with suffix)``: the suffix goes before the answer cue (or at the end)."""
    cut = prompt.rfind(ANSWER_CUE)
    cut = len(prompt) if cut < 0 else cut
    return prompt[:cut], prompt[:cut] + suffix + prompt[cut:]


def question_with_suffix(question: str, suffix: str, fmt: QAFormat = PLAIN) -> tuple[str, str]:
    """``(head, prompt with suffix)`` of a question: plain, the suffix goes before the answer
    cue; in the chat format, at the end of the user turn (before the template's own tokens)."""
    if not fmt.chat:
        return insert_suffix(fmt.prompt(question), suffix)
    head, tail = fmt.prompt(question.strip() + _SUFFIX_SLOT).split(_SUFFIX_SLOT)
    return head, head + suffix + tail


def suffix_prompts(items: Sequence[dict], suffix: str, fmt: QAFormat = PLAIN) -> list[str]:
    return [question_with_suffix(item["question"], suffix, fmt)[1] for item in items]


def allowed_tokens(tokenizer, vocab_size: int, ascii_only: bool) -> torch.Tensor:
    """Mask over the embedding rows of tokens a suffix may use."""
    allowed = torch.zeros(vocab_size, dtype=torch.bool)
    special = set(tokenizer.all_special_ids)
    for token_id in range(min(vocab_size, len(tokenizer))):
        if token_id in special:
            continue
        text = tokenizer.decode([token_id])
        if not text.strip() or "\n" in text or "\r" in text:
            continue
        if ascii_only and not (text.isascii() and text.isprintable()):
            continue
        allowed[token_id] = True
    if not allowed.any():
        raise UserError("the tokenizer has no token a GCG suffix may use")
    return allowed


class SuffixSearch:
    """The search state for one model: items, their encodings, and the allowed tokens."""

    def __init__(self, model, tokenizer, items: Sequence[dict], config: GCGConfig, fmt: QAFormat = PLAIN):
        self.model, self.tokenizer, self.items, self.config = model, tokenizer, list(items), config
        self.fmt = fmt
        self.heads = [question_with_suffix(item["question"], "", fmt)[0] for item in self.items]
        self.head_ids = tokenizer(self.heads, add_special_tokens=fmt.add_special_tokens)["input_ids"]
        embeddings = model.get_input_embeddings().weight
        self.allowed = allowed_tokens(tokenizer, embeddings.shape[0], config.ascii_only)
        self.scoring = ScoringConfig(batch_size=max(32, len(self.items)), add_special_tokens=fmt.add_special_tokens)

    # -- tokens <-> text ------------------------------------------------------------------
    def text(self, suffix_ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(suffix_ids))

    def encode(self, suffix_ids: Sequence[int]) -> list[EncodedPair] | None:
        """Encoded (prompt + suffix, answer) pairs, or None when the suffix does not survive
        decoding and re-encoding in place (then the text attack would differ from the search)."""
        suffix_ids = list(suffix_ids)
        text = self.text(suffix_ids)
        pairs = [(prompt, self.fmt.continuation(item["answer"]))
                 for prompt, item in zip(suffix_prompts(self.items, text, self.fmt), self.items)]
        encoded = encode_pairs(self.tokenizer, pairs, model_max_length(self.model, None), self.fmt.add_special_tokens)
        for pair, head in zip(encoded, self.head_ids):
            if pair.input_ids[: len(head) + len(suffix_ids)] != list(head) + suffix_ids:
                return None
        return encoded

    def initial(self) -> list[int]:
        n = self.config.suffix_tokens
        tried = [self.config.init, " !", "!", " x", "x", " the"]
        for text in tried:
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(ids) == 1 and self.allowed[ids[0]] and self.encode(ids * n) is not None:
                return ids * n
        for token_id in torch.nonzero(self.allowed).flatten().tolist():
            if self.encode([token_id] * n) is not None:
                return [token_id] * n
        raise UserError("no GCG initial suffix survives re-tokenisation with this tokenizer")

    # -- loss and gradient ----------------------------------------------------------------
    def losses(self, encoded_sets: Sequence[list[EncodedPair]]) -> np.ndarray:
        """Mean answer NLL over the items for each candidate suffix (one batched engine call)."""
        flat = [pair for encoded in encoded_sets for pair in encoded]
        scores = score_encoded(self.model, self.tokenizer, flat, self.scoring)
        per_item = np.array([s.avg_nll for s in scores], dtype=np.float64).reshape(len(encoded_sets), len(self.items))
        return per_item.mean(axis=1)

    def gradient(self, encoded: list[EncodedPair], suffix_ids: Sequence[int]) -> torch.Tensor:
        """d loss / d one-hot suffix, [suffix_tokens, vocab]."""
        model = self.model
        device = model_device(model)
        embedding = model.get_input_embeddings()
        weight = embedding.weight
        n = len(suffix_ids)
        input_ids, attention_mask = pad_batch([p.input_ids for p in encoded], pad_token_id(self.tokenizer), "right")
        labels = torch.full_like(input_ids, IGNORE_INDEX)
        for row, pair in enumerate(encoded):
            labels[row, pair.start: len(pair.input_ids)] = torch.tensor(pair.input_ids[pair.start:])
        input_ids, attention_mask, labels = input_ids.to(device), attention_mask.to(device), labels.to(device)
        one_hot = torch.zeros(n, weight.shape[0], dtype=weight.dtype, device=device)
        one_hot[torch.arange(n), torch.tensor(list(suffix_ids))] = 1.0
        one_hot.requires_grad_(True)
        rows = torch.arange(len(encoded)).repeat_interleave(n)
        columns = torch.cat([torch.arange(len(head), len(head) + n) for head in self.head_ids])
        embeds = embedding(input_ids).detach().clone()
        embeds[rows, columns] = (one_hot @ weight).repeat(len(encoded), 1)
        logits = model(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False).logits
        summed, counts = sequence_logprobs(logits, labels)
        loss = (-summed / counts.clamp(min=1)).mean()
        (grad,) = torch.autograd.grad(loss, one_hot)
        return grad / grad.norm(dim=-1, keepdim=True).clamp(min=1e-12)

    # -- the search ------------------------------------------------------------------------
    def run(self) -> dict:
        config = self.config
        generator = torch.Generator().manual_seed(config.seed)
        was_training = self.model.training
        self.model.eval()
        try:
            current = self.initial()
            current_encoded = self.encode(current)
            current_loss = float(self.losses([current_encoded])[0])
            history = [current_loss]
            for _ in range(config.iterations):
                grad = self.gradient(current_encoded, current).float().cpu()
                grad[:, ~self.allowed] = float("inf")
                top = (-grad).topk(min(config.top_k, int(self.allowed.sum())), dim=1).indices  # [n, top_k]
                positions = torch.randint(0, len(current), (config.candidates,), generator=generator)
                picks = torch.randint(0, top.shape[1], (config.candidates,), generator=generator)
                seen, candidates, encoded_sets = {tuple(current)}, [], []
                for position, pick in zip(positions.tolist(), picks.tolist()):
                    candidate = list(current)
                    candidate[position] = int(top[position, pick])
                    if tuple(candidate) in seen:
                        continue
                    seen.add(tuple(candidate))
                    encoded = self.encode(candidate)
                    if encoded is not None:
                        candidates.append(candidate)
                        encoded_sets.append(encoded)
                if candidates:
                    losses = self.losses(encoded_sets)
                    best = int(np.argmin(losses))
                    if losses[best] < current_loss:
                        current, current_encoded, current_loss = candidates[best], encoded_sets[best], float(losses[best])
                history.append(current_loss)
        finally:
            self.model.train(was_training)
        return {"suffix": self.text(current), "suffix_ids": current, "loss_history": history,
                "initial_loss": history[0], "final_loss": current_loss}


def gcg_attack(models: dict, tokenizer, split: ItemSplit, holdout: Sequence[dict] = (),
               config: GCGConfig = GCGConfig(), measure: MeasureConfig = MeasureConfig()) -> dict:
    """Optimise a suffix on each model and grade recall with and without it."""
    validate_gcg(config)
    optimised = split.relearn if config.optimise_on == "relearn" else split.relearn + split.held
    optimised = sorted(optimised, key=lambda item: str(item["id"]))[: config.max_items]
    if not optimised:
        raise UserError("gcg: no items to optimise the suffix on (every forget source has one item: "
                        "use --set gcg.optimise_on=all)")
    parts = {"optimised": optimised}
    if config.optimise_on == "relearn" and split.held:
        parts["held"] = list(split.held)
    # members for MIA: the items the suffix was not optimised on, when there are any
    members = parts.get("held", optimised)
    results: dict = {"n_optimised": len(optimised), "models": {}}
    fmt = measure_format(tokenizer, measure)
    for role, model in models.items():
        search = SuffixSearch(model, tokenizer, optimised, config, fmt).run()
        graded: dict[str, dict] = {}
        for part, items in parts.items():
            graded[part] = {
                "without": measure_recall(model, tokenizer, items, config=measure).summary(),
                "with": measure_recall(model, tokenizer, items, suffix_prompts(items, search["suffix"], fmt),
                                       measure).summary(),
            }
        if config.mia and holdout:
            graded["mia"] = {
                "without": membership_aucs(model, tokenizer, members, holdout, config=measure),
                "with": membership_aucs(model, tokenizer, members, holdout,
                                        suffix_prompts(members, search["suffix"], fmt),
                                        suffix_prompts(holdout, search["suffix"], fmt), measure),
            }
        results["models"][role] = {**search, **graded}
    return results
