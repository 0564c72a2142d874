"""The scoring engine: teacher-forced log-probs of many (prompt, continuation) pairs.

Every metric goes through :func:`score_continuations`, so this is the hot path. Items are
tokenized once; continuations of the same prompt (an answer, its paraphrase and its
perturbations) are packed into one row behind a single copy of the prompt, with a 4D
attention mask so each continuation sees only the prompt and itself; rows are sorted by
length (little padding) and run in padded batches on the model's device under
``torch.inference_mode()``; the output head and the per-token quantities are computed on
the scored positions only, with tensor ops (no Python loop over tokens). Models for which
packing does not reproduce the plain forward (checked once per model on a probe) are run
one pair per row.

Tokenization follows lm-evaluation-harness: ``whole = encode(prompt + continuation)``,
``context = encode(prompt)``, the continuation is ``whole[len(context):]``. So the scored
tokens are exactly the ones a model trained on ``prompt + continuation`` text saw.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import weakref
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from obliviate.errors import UserError

logger = logging.getLogger(__name__)

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
    # Continuations of one prompt (an answer, its paraphrase, its perturbations) share a row:
    # the prompt is run once and each continuation attends to it and to itself only. Used for
    # transformers models once a probe shows it gives the plain path's scores.
    share_prompts: bool = True
    # Longest packed row (tokens); a single longer pair still gets its own row.
    max_row_tokens: int = 128


@dataclass
class TokenScores:
    """Teacher-forced scores of one continuation given its prompt."""

    nll_sum: float
    n_tokens: int
    logprobs: np.ndarray  # [n_tokens] log p(token | prefix)
    argmax_match: np.ndarray  # [n_tokens] bool: the model's argmax equals the token
    minkpp: np.ndarray | None = None  # [n_tokens] (log p - mu) / sigma, mu/sigma under p
    # the last scored token is the EOS the engine appended (``append_eos``): probability,
    # truth ratio, LOSS and ZLib include its prediction, Min-K / memorization do not
    # (open-unlearning's evaluate_probability vs tokenwise_logprobs)
    eos: bool = False

    @property
    def avg_nll(self) -> float:
        return self.nll_sum / self.n_tokens

    @property
    def content(self) -> slice:
        """The scored tokens without an appended EOS (at least one token)."""
        return slice(0, self.n_tokens - 1 if self.eos and self.n_tokens > 1 else self.n_tokens)

    @property
    def content_logprobs(self) -> np.ndarray:
        return self.logprobs[self.content]

    @property
    def content_argmax_match(self) -> np.ndarray:
        return self.argmax_match[self.content]

    @property
    def content_minkpp(self) -> np.ndarray | None:
        return None if self.minkpp is None else self.minkpp[self.content]


@dataclass
class EncodedPair:
    input_ids: list[int]
    start: int  # index of the first continuation token in input_ids (always >= 1)
    eos: bool = False  # input_ids end with an EOS appended after the continuation


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
    tokenizer, pairs: Sequence[tuple[str, str]], max_length: int | None = None, add_special_tokens: bool = True,
    append_eos: Sequence[bool] | bool = False,
) -> list[EncodedPair]:
    """Token ids of ``prompt + continuation`` and where the continuation starts.

    ``append_eos`` (one flag per pair, or one for all): the tokenizer's EOS id follows the
    continuation and is scored with it, as open-unlearning appends EOS to its labels (a
    model trained on ``<bos> text <eos>`` documents has learned to end the answer there),
    unless the continuation already ends with it (a chat template's end of turn).
    """
    flags = [bool(append_eos)] * len(pairs) if isinstance(append_eos, bool) else [bool(f) for f in append_eos]
    if len(flags) != len(pairs):
        raise ValueError(f"{len(flags)} append_eos flags for {len(pairs)} pairs")
    eos_id = tokenizer.eos_token_id
    if any(flags) and eos_id is None:
        raise UserError("the tokenizer has no EOS token to append to the scored answers")
    # many pairs share a prompt (an answer, its paraphrase, its perturbations): encode it once
    unique_prompts = list(dict.fromkeys(p for p, _ in pairs))
    prompt_ids = dict(zip(unique_prompts, token_ids(tokenizer, unique_prompts, add_special_tokens)))
    whole_ids = token_ids(tokenizer, [p + c for p, c in pairs], add_special_tokens)
    encoded: list[EncodedPair] = []
    for index, ((prompt, _), whole) in enumerate(zip(pairs, whole_ids)):
        ctx = prompt_ids[prompt]
        if flags[index] and (not whole or whole[-1] != eos_id):  # a chat turn may already end in EOS
            whole = list(whole) + [int(eos_id)]
        # the first token has no prediction: an empty prompt without BOS starts scoring at 1
        start = max(len(ctx), 1)
        if max_length is not None and len(whole) > max_length:
            drop = len(whole) - max_length  # keep the continuation, cut the prompt's start
            whole = whole[drop:]
            start = max(start - drop, 1)
        if start >= len(whole):
            raise UserError(f"item {index}: continuation {pairs[index][1]!r} has no tokens to score "
                            f"(prompt {pairs[index][0][:60]!r})")
        encoded.append(EncodedPair(input_ids=list(whole), start=start, eos=flags[index]))
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


def pad_token_id(tokenizer) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0


@dataclass
class PackedRow:
    """One row of a forward pass: a prompt, then one or more continuations of it.

    With prompt sharing, each continuation attends to the prompt and to itself only, and
    its positions restart where the prompt ends, so it is scored exactly as if it followed
    the prompt alone; the prompt is run once instead of once per continuation.
    """

    input_ids: list[int]
    position_ids: list[int]
    segments: list[int]  # 0: prompt token, i >= 1: token of the row's i-th continuation
    # per continuation: (item index, columns whose logits predict its tokens, its token ids)
    items: list[tuple[int, list[int], list[int]]]


def pack_rows(encoded: Sequence[EncodedPair], share_prompts: bool, max_row_tokens: int) -> list[PackedRow]:
    """Rows for ``encoded``: items with an identical prompt prefix share a row when
    ``share_prompts`` (up to ``max_row_tokens`` tokens per row), else one item per row."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, pair in enumerate(encoded):
        key = tuple(pair.input_ids[:pair.start]) if share_prompts else (index,)
        groups.setdefault(key, []).append(index)
    rows: list[PackedRow] = []
    for members in groups.values():
        prompt = encoded[members[0]].input_ids[:encoded[members[0]].start]
        row: PackedRow | None = None
        for index in members:
            continuation = encoded[index].input_ids[encoded[index].start:]
            # a pair longer than max_row_tokens gets a row of its own
            if row is None or (row.items and len(row.input_ids) + len(continuation) > max_row_tokens):
                row = PackedRow(input_ids=list(prompt), position_ids=list(range(len(prompt))),
                                segments=[0] * len(prompt), items=[])
                rows.append(row)
            first = len(row.input_ids)
            # the prompt's last token predicts every continuation's first token
            predictors = [len(prompt) - 1] + list(range(first, first + len(continuation) - 1))
            row.items.append((index, predictors, continuation))
            row.input_ids.extend(continuation)
            row.position_ids.extend(range(len(prompt), len(prompt) + len(continuation)))
            row.segments.extend([len(row.items)] * len(continuation))
    return rows


def tree_attention_mask(segments: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive [B, 1, T, T] mask for packed rows (segments -1 on padding): causal, and a
    continuation sees the prompt (segment 0) and itself only. Padding queries see themselves
    (a row with nothing to attend to would give NaNs)."""
    width = segments.shape[1]
    columns = torch.arange(width, device=segments.device)
    causal = columns[None, :] <= columns[:, None]  # [T(query), T(key)]
    query, key = segments[:, :, None], segments[:, None, :]
    allowed = causal[None] & (key >= 0) & (query >= 0) & ((key == 0) | (key == query))
    allowed |= torch.eye(width, dtype=torch.bool, device=segments.device)[None] & (query < 0)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=segments.device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None]


@dataclass
class ForwardPlan:
    """How a model is run: ``packed`` rows (4D mask, decoder then output head on the scored
    positions only) or one pair per row with a 2D padding mask and the full forward."""

    packed: bool
    use_position_ids: bool
    use_logits_to_keep: bool


def _pad_rows(rows: Sequence[PackedRow], pad_id: int, side: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
    """input_ids, position_ids, segments (-1 on padding) and each row's column offset."""
    width = max(len(r.input_ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    segments = torch.full((len(rows), width), -1, dtype=torch.long)
    offsets = []
    for b, row in enumerate(rows):
        offset = width - len(row.input_ids) if side == "left" else 0
        span = slice(offset, offset + len(row.input_ids))
        ids[b, span] = torch.tensor(row.input_ids)
        positions[b, span] = torch.tensor(row.position_ids)
        segments[b, span] = torch.tensor(row.segments)
        offsets.append(offset)
    return ids, positions, segments, offsets


@torch.inference_mode()
def _selected_logits(model, rows: Sequence[PackedRow], pad_id: int, plan: ForwardPlan, side: str
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits at every scored position of ``rows`` ([M, V], items in row order) and the
    tokens they should predict ([M])."""
    device = model_device(model)
    ids, positions, segments, offsets = _pad_rows(rows, pad_id, "right" if plan.packed else side)
    batch_rows, columns, targets = [], [], []
    for b, (row, offset) in enumerate(zip(rows, offsets)):
        for _, predictors, continuation in row.items:
            batch_rows.extend([b] * len(predictors))
            columns.extend(c + offset for c in predictors)
            targets.extend(continuation)
    batch_rows_t = torch.tensor(batch_rows, device=device)
    columns_t = torch.tensor(columns, device=device)
    targets_t = torch.tensor(targets, device=device)
    if plan.packed:
        head = model.get_output_embeddings()
        mask = tree_attention_mask(segments.to(device), head.weight.dtype)
        hidden = model.get_decoder()(input_ids=ids.to(device), attention_mask=mask,
                                     position_ids=positions.to(device), use_cache=False)[0]
        # the output head only where a token is scored: most of a row is prompt or padding
        return head(hidden[batch_rows_t, columns_t]), targets_t
    kwargs = {"input_ids": ids.to(device), "attention_mask": (segments >= 0).long().to(device), "use_cache": False}
    if plan.use_position_ids:
        kwargs["position_ids"] = positions.to(device)
    keep = ids.shape[1]
    if plan.use_logits_to_keep:
        keep = ids.shape[1] - min(columns)  # logits only from the earliest scored column on
        kwargs["logits_to_keep"] = keep
    logits = model(**kwargs).logits
    return logits[batch_rows_t, columns_t - (ids.shape[1] - keep)], targets_t


def _row_scores(model, rows: Sequence[PackedRow], pad_id: int, plan: ForwardPlan, config: ScoringConfig,
                eos_flags: Sequence[bool] = ()) -> list[tuple[int, TokenScores]]:
    """(item index, scores) of every continuation in ``rows``."""
    selected, targets = _selected_logits(model, rows, pad_id, plan, config.padding_side)
    selected = selected.float()
    argmax_match = selected.argmax(-1) == targets
    minkpp = None
    # log_softmax is one fused kernel: on CPU ~4x faster than logsumexp's separate passes
    log_probs = torch.log_softmax(selected, dim=-1)
    token_logprobs = log_probs.gather(-1, targets[:, None]).squeeze(-1)
    if config.minkpp:
        probs = log_probs.exp()
        # centred second moment: E[x^2] - mu^2 cancels badly in float32
        mu = (probs * log_probs).nan_to_num(0.0).sum(-1)
        variance = (probs * (log_probs - mu[:, None]).square()).nan_to_num(0.0).sum(-1)
        sigma = variance.clamp(min=1e-12).sqrt()
        minkpp = ((token_logprobs - mu) / sigma).cpu().numpy()
    token_logprobs = token_logprobs.cpu().numpy()
    argmax_match = argmax_match.cpu().numpy()
    results: list[tuple[int, TokenScores]] = []
    cursor = 0
    for row in rows:
        for index, _, continuation in row.items:
            piece = slice(cursor, cursor + len(continuation))
            lp = token_logprobs[piece]
            results.append((index, TokenScores(
                nll_sum=float(-lp.sum(dtype=np.float64)),
                n_tokens=len(continuation),
                logprobs=lp,
                argmax_match=argmax_match[piece],
                minkpp=None if minkpp is None else minkpp[piece],
                eos=bool(eos_flags[index]) if eos_flags else False,
            )))
            cursor += len(continuation)
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


# Packed rows are used for a model only after they reproduced the plain path on a probe
# (custom heads such as logit soft-capping, or models ignoring 4D masks, fail the check).
_PACKED_OK: "weakref.WeakKeyDictionary[torch.nn.Module, tuple[torch.dtype, bool]]" = weakref.WeakKeyDictionary()


def _packing_supported(model) -> bool:
    return (type(model).__module__.startswith("transformers.")
            and _accepts(model, "position_ids")
            and callable(getattr(model, "get_decoder", None))
            and getattr(model, "get_output_embeddings", lambda: None)() is not None)


def _packed_matches_plain(model, encoded: Sequence[EncodedPair], pad_id: int, plain: ForwardPlan,
                          config: ScoringConfig) -> bool:
    """Score a few shared-prompt items both ways; packed rows must give the same log-probs."""
    rows = sorted(pack_rows(encoded, True, 512), key=lambda r: -len(r.items))[:4]
    items = [encoded[index] for row in rows for index, _, _ in row.items]
    packed = ForwardPlan(packed=True, use_position_ids=True, use_logits_to_keep=False)
    probe = dataclasses.replace(config, minkpp=False)
    try:
        fast = _row_scores(model, pack_rows(items, True, 512), pad_id, packed, probe)
    except Exception as exc:  # a capability probe: any failure means "use the plain path"
        logger.debug("packed scoring unsupported for %s: %s", type(model).__name__, exc)
        return False
    reference = _row_scores(model, pack_rows(items, False, 512), pad_id, plain, probe)
    tolerance = 1e-3 if model_dtype(model) == torch.float32 else 5e-2
    return all(np.allclose(a.logprobs, b.logprobs, atol=tolerance)
               for (_, a), (_, b) in zip(sorted(fast, key=lambda x: x[0]), sorted(reference, key=lambda x: x[0])))


def model_dtype(model) -> torch.dtype:
    return model.get_input_embeddings().weight.dtype


def forward_plan(model, encoded: Sequence[EncodedPair], pad_id: int, config: ScoringConfig) -> ForwardPlan:
    use_position_ids = _accepts(model, "position_ids")
    plain = ForwardPlan(packed=False, use_position_ids=use_position_ids,
                        use_logits_to_keep=_accepts(model, "logits_to_keep"))
    # dropout would make the check (and any score) noisy: training-mode models run plain
    if not (config.share_prompts and _packing_supported(model)) or model.training:
        return plain
    cached = _PACKED_OK.get(model)
    if cached is None or cached[0] != model_dtype(model):
        cached = (model_dtype(model), _packed_matches_plain(model, encoded, pad_id, plain, config))
        _PACKED_OK[model] = cached
    return ForwardPlan(packed=True, use_position_ids=True, use_logits_to_keep=False) if cached[1] else plain


def score_encoded(model, tokenizer, encoded: Sequence[EncodedPair], config: ScoringConfig = ScoringConfig()
                  ) -> list[TokenScores]:
    """Score already-encoded pairs; results are in input order."""
    if config.batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {config.batch_size}")
    if not encoded:
        return []
    pad_id = pad_token_id(tokenizer)
    plan = forward_plan(model, encoded, pad_id, config)
    if config.padding_side == "left" and not plan.use_position_ids:
        # without position ids a left-padded row would start at a position > 0
        config = dataclasses.replace(config, padding_side="right")
    rows = pack_rows(encoded, plan.packed, config.max_row_tokens)
    eos_flags = [pair.eos for pair in encoded]
    results: list[TokenScores | None] = [None] * len(encoded)
    for indices in length_batches([len(r.input_ids) for r in rows], config.batch_size, config.max_batch_tokens):
        for index, scores in _row_scores(model, [rows[i] for i in indices], pad_id, plan, config, eos_flags):
            results[index] = scores
    return results  # type: ignore[return-value]


def score_continuations(model, tokenizer, pairs: Sequence[tuple[str, str]],
                        config: ScoringConfig = ScoringConfig(),
                        append_eos: Sequence[bool] | bool = False) -> list[TokenScores]:
    """Summed NLL, token count, per-token log-probs and argmax flags of each continuation.

    ``pairs`` is a sequence of ``(prompt, continuation)`` strings; results come back in
    the same order. ``append_eos``: see :func:`encode_pairs`. Runs on whatever device the
    model is on.
    """
    encoded = encode_pairs(tokenizer, pairs, model_max_length(model, config.max_length), config.add_special_tokens,
                           append_eos)
    return score_encoded(model, tokenizer, encoded, config)
