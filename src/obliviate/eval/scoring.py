"""The scoring engine: teacher-forced log-probs of many (prompt, continuation) pairs.

Every metric goes through :func:`score_continuations`, so this is the hot path. Items are
tokenized once, sorted by length (little padding), run in padded batches on the model's
device under ``torch.inference_mode()``, and the per-token quantities are computed with
tensor ops on the continuation positions only (no Python loop over tokens).

Tokenization follows lm-evaluation-harness: ``whole = encode(prompt + continuation)``,
``context = encode(prompt)``, the continuation is ``whole[len(context):]``. So the scored
tokens are exactly the ones a model trained on ``prompt + continuation`` text saw.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from obliviate.errors import UserError

PADDING_SIDES = ("left", "right")


@dataclass
class ScoringConfig:
    batch_size: int = 32
    # Also cap the padded tokens of a batch (rows x longest row): short items go in big
    # batches, long documents in small ones, so memory stays bounded. None: no cap.
    max_batch_tokens: int | None = 16384
    # Both sides give the same numbers (position ids follow the attention mask); left is
    # the default because generation needs it too and it keeps one code path warm.
    padding_side: str = "left"
    # Longest sequence fed to the model; None: the model's max_position_embeddings.
    max_length: int | None = None
    # Also compute the per-token Min-K%++ z-scores (needs the full vocabulary distribution).
    minkpp: bool = False
    # Encode with the tokenizer's special tokens (BOS); turn off for chat-template prompts
    # that already hold them.
    add_special_tokens: bool = True


@dataclass
class TokenScores:
    """Teacher-forced scores of one continuation given its prompt."""

    nll_sum: float
    n_tokens: int
    logprobs: np.ndarray  # [n_tokens] log p(token | prefix)
    argmax_match: np.ndarray  # [n_tokens] bool: the model's argmax equals the token
    minkpp: np.ndarray | None = None  # [n_tokens] (log p - mu) / sigma, mu/sigma under p

    @property
    def avg_nll(self) -> float:
        return self.nll_sum / self.n_tokens

    @property
    def prob(self) -> float:
        return float(np.exp(-self.avg_nll))


@dataclass
class EncodedPair:
    input_ids: list[int]
    start: int  # index of the first continuation token in input_ids (always >= 1)


def model_device(model) -> torch.device:
    """Where inputs must go: the input embeddings' device (works with device_map too)."""
    return model.get_input_embeddings().weight.device


def model_max_length(model, requested: int | None) -> int | None:
    if requested is not None:
        return requested
    return getattr(model.config, "max_position_embeddings", None)


def token_ids(tokenizer, texts: Sequence[str], add_special_tokens: bool = True) -> list[list[int]]:
    """Token ids of each text, unpadded and untruncated.

    A fast tokenizer's Rust backend is called directly when it is configured without
    padding or truncation (it then gives exactly what ``tokenizer(texts)`` gives, without
    offsets and Python-side conversion); anything else goes through ``tokenizer(...)``.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    encode = getattr(backend, "encode_batch_fast", None)
    if encode is not None and backend.padding is None and backend.truncation is None:
        return [encoding.ids for encoding in encode(list(texts), add_special_tokens=add_special_tokens)]
    return tokenizer(list(texts), add_special_tokens=add_special_tokens)["input_ids"]


def encode_pairs(
    tokenizer, pairs: Sequence[tuple[str, str]], max_length: int | None = None, add_special_tokens: bool = True
) -> list[EncodedPair]:
    """Token ids of ``prompt + continuation`` and where the continuation starts."""
    # many pairs share a prompt (an answer, its paraphrase, its perturbations): encode it once
    unique_prompts = list(dict.fromkeys(p for p, _ in pairs))
    prompt_ids = dict(zip(unique_prompts, token_ids(tokenizer, unique_prompts, add_special_tokens)))
    whole_ids = token_ids(tokenizer, [p + c for p, c in pairs], add_special_tokens)
    encoded: list[EncodedPair] = []
    for index, ((prompt, _), whole) in enumerate(zip(pairs, whole_ids)):
        ctx = prompt_ids[prompt]
        # the first token has no prediction: an empty prompt without BOS starts scoring at 1
        start = max(len(ctx), 1)
        if max_length is not None and len(whole) > max_length:
            drop = len(whole) - max_length  # keep the continuation, cut the prompt's start
            whole = whole[drop:]
            start = max(start - drop, 1)
        if start >= len(whole):
            raise UserError(f"item {index}: continuation {pairs[index][1]!r} has no tokens to score "
                            f"(prompt {pairs[index][0][:60]!r})")
        encoded.append(EncodedPair(input_ids=list(whole), start=start))
    return encoded


def _accepts(model, name: str) -> bool:
    """Whether ``model.forward`` takes ``name`` explicitly (custom models may not)."""
    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to a rectangle; return (input_ids, attention_mask)."""
    if side not in PADDING_SIDES:
        raise UserError(f"padding side must be one of {PADDING_SIDES}, got {side!r}")
    rows = [torch.tensor(seq, dtype=torch.long) for seq in sequences]
    ids = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=pad_id, padding_side=side)
    mask = torch.nn.utils.rnn.pad_sequence([torch.ones_like(r) for r in rows], batch_first=True, padding_value=0,
                                           padding_side=side)
    return ids, mask


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2... over the real tokens of each row, whichever side the padding is on."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


def pad_token_id(tokenizer) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0


@torch.inference_mode()
def _score_batch(model, batch: list[EncodedPair], pad_id: int, config: ScoringConfig,
                 use_position_ids: bool, use_logits_to_keep: bool) -> list[TokenScores]:
    device = model_device(model)
    input_ids, attention_mask = pad_batch([p.input_ids for p in batch], pad_id, config.padding_side)
    width = input_ids.shape[1]
    # target mask: True at positions whose token belongs to a continuation
    offsets = torch.tensor([width - len(p.input_ids) if config.padding_side == "left" else 0 for p in batch])
    starts = offsets + torch.tensor([p.start for p in batch])
    ends = offsets + torch.tensor([len(p.input_ids) for p in batch])
    columns = torch.arange(width)
    target_mask = (columns[None, :] >= starts[:, None]) & (columns[None, :] < ends[:, None])

    kwargs = {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device), "use_cache": False}
    if use_position_ids:
        kwargs["position_ids"] = position_ids_from_mask(attention_mask).to(device)
    # logits are only needed from the position before the earliest continuation token on
    first_needed = int(starts.min()) - 1
    keep = width - first_needed
    if use_logits_to_keep:
        kwargs["logits_to_keep"] = keep
    logits = model(**kwargs).logits
    logits = logits[:, -keep:]  # [B, keep, V] predicting tokens first_needed+1 .. width
    predict_mask = target_mask[:, first_needed + 1:].to(logits.device)  # [B, keep-1]
    targets = input_ids[:, first_needed + 1:].to(logits.device)[predict_mask]  # [M]
    selected = logits[:, :-1][predict_mask].float()  # [M, V]: only continuation positions
    argmax_match = selected.argmax(-1) == targets
    minkpp = None
    if not config.minkpp:
        # log p(token) = logit - logsumexp(logits): no [M, V] log-prob tensor needed
        token_logprobs = selected.gather(-1, targets[:, None]).squeeze(-1) - torch.logsumexp(selected, dim=-1)
    else:
        log_probs = torch.log_softmax(selected, dim=-1)
        token_logprobs = log_probs.gather(-1, targets[:, None]).squeeze(-1)
        probs = log_probs.exp()
        # centred second moment: E[x^2] - mu^2 cancels badly in float32
        mu = (probs * log_probs).nan_to_num(0.0).sum(-1)
        variance = (probs * (log_probs - mu[:, None]).square()).nan_to_num(0.0).sum(-1)
        sigma = variance.clamp(min=1e-12).sqrt()
        minkpp = ((token_logprobs - mu) / sigma).cpu().numpy()

    counts = predict_mask.sum(-1).tolist()
    token_logprobs = token_logprobs.cpu().numpy()
    argmax_match = argmax_match.cpu().numpy()
    results: list[TokenScores] = []
    cursor = 0
    for count in counts:
        piece = slice(cursor, cursor + count)
        lp = token_logprobs[piece]
        results.append(TokenScores(
            nll_sum=float(-lp.sum(dtype=np.float64)),
            n_tokens=int(count),
            logprobs=lp,
            argmax_match=argmax_match[piece],
            minkpp=None if minkpp is None else minkpp[piece],
        ))
        cursor += count
    return results


def length_batches(lengths: Sequence[int], batch_size: int, max_batch_tokens: int | None = None) -> list[list[int]]:
    """Indices grouped longest first: at most ``batch_size`` rows and, when set, at most
    ``max_batch_tokens`` padded tokens per batch (a single over-long row still gets a batch)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        # rows come longest first, so the first row's length is the padded width
        width = lengths[current[0]] if current else lengths[index]
        full = len(current) >= batch_size or (max_batch_tokens is not None and (len(current) + 1) * width > max_batch_tokens)
        if current and full:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def score_encoded(model, tokenizer, encoded: Sequence[EncodedPair], config: ScoringConfig = ScoringConfig()
                  ) -> list[TokenScores]:
    """Score already-encoded pairs; results are in input order."""
    if config.batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {config.batch_size}")
    if not encoded:
        return []
    pad_id = pad_token_id(tokenizer)
    use_position_ids = _accepts(model, "position_ids")
    use_logits_to_keep = _accepts(model, "logits_to_keep")
    if config.padding_side == "left" and not use_position_ids:
        # without position ids a left-padded row would start at a position > 0
        config = dataclasses.replace(config, padding_side="right")
    results: list[TokenScores | None] = [None] * len(encoded)
    for indices in length_batches([len(e.input_ids) for e in encoded], config.batch_size, config.max_batch_tokens):
        batch_scores = _score_batch(model, [encoded[i] for i in indices], pad_id, config,
                                    use_position_ids, use_logits_to_keep)
        for index, scores in zip(indices, batch_scores):
            results[index] = scores
    return results  # type: ignore[return-value]


def score_continuations(model, tokenizer, pairs: Sequence[tuple[str, str]],
                        config: ScoringConfig = ScoringConfig()) -> list[TokenScores]:
    """Summed NLL, token count, per-token log-probs and argmax flags of each continuation.

    ``pairs`` is a sequence of ``(prompt, continuation)`` strings; results come back in
    the same order. Runs on whatever device the model is on.
    """
    encoded = encode_pairs(tokenizer, pairs, model_max_length(model, config.max_length), config.add_special_tokens)
    return score_encoded(model, tokenizer, encoded, config)
