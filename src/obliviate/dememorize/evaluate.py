"""Memorization measures for dememorization: does the model still reproduce the suffix?

- ``exact_extraction``: share of documents whose greedy continuation of the prefix
  reproduces the true suffix token for token (Carlini et al.'s "extractable").
- ``token_match``: share of suffix positions where the greedy continuation has the true token.
- ``greedy_rouge_l`` / ``greedy_bleu``: similarity of the greedy continuation to the suffix.
- ``retain_perplexity``: ``exp`` of the mean token NLL of retain documents (``<bos>`` +
  text, as in training), through the scoring engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from obliviate.dememorize.data import PrefixSuffix, document_ids
from obliviate.dememorize.reward import bleu, rouge_l
from obliviate.errors import UserError
from obliviate.eval.scoring import EncodedPair, ScoringConfig, model_device, pad_batch, pad_token_id, score_encoded


@torch.inference_mode()
def greedy_continuations(model, tokenizer, prefixes: Sequence[Sequence[int]], max_new_tokens: int,
                         batch_size: int = 32) -> list[list[int]]:
    """Greedy continuation ids of each prefix (token ids in, token ids out), left-padded batches."""
    from transformers import GenerationConfig

    pad_id = pad_token_id(tokenizer)
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, pad_token_id=pad_id,
                              eos_token_id=tokenizer.eos_token_id)
    device = model_device(model)
    outputs: list[list[int]] = []
    for begin in range(0, len(prefixes), batch_size):
        chunk = [list(p) for p in prefixes[begin:begin + batch_size]]
        input_ids, attention_mask = pad_batch(chunk, pad_id, "left")
        generated = model.generate(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                                   generation_config=config)
        for row in generated[:, input_ids.shape[1]:].cpu().tolist():
            if tokenizer.eos_token_id is not None and tokenizer.eos_token_id in row:
                row = row[:row.index(tokenizer.eos_token_id)]
            outputs.append(row)
    return outputs


@dataclass
class ExtractionScores:
    exact_extraction: float
    token_match: float
    greedy_rouge_l: float
    greedy_bleu: float
    per_doc: dict[str, dict]

    def summary(self) -> dict:
        return {"exact_extraction": self.exact_extraction, "token_match": self.token_match,
                "greedy_rouge_l": self.greedy_rouge_l, "greedy_bleu": self.greedy_bleu}


def extraction_scores(model, tokenizer, pieces: Sequence[PrefixSuffix], batch_size: int = 32) -> ExtractionScores:
    if not pieces:
        raise UserError("no (prefix, suffix) pieces to evaluate")
    length = max(len(p.suffix_ids) for p in pieces)
    continuations = greedy_continuations(model, tokenizer, [p.prefix_ids for p in pieces], length, batch_size)
    per_doc, exact, matches, rouges, bleus = {}, [], [], [], []
    for piece, continuation in zip(pieces, continuations):
        continuation = continuation[:len(piece.suffix_ids)]
        same = [a == b for a, b in zip(continuation, piece.suffix_ids)]
        text = tokenizer.decode(continuation, skip_special_tokens=True)
        row = {"exact": continuation == piece.suffix_ids, "token_match": sum(same) / len(piece.suffix_ids),
               "rouge_l": rouge_l(text, piece.suffix_text), "bleu": bleu(text, piece.suffix_text),
               "continuation": text}
        per_doc[piece.doc_id] = row
        exact.append(row["exact"]), matches.append(row["token_match"])
        rouges.append(row["rouge_l"]), bleus.append(row["bleu"])
    return ExtractionScores(float(np.mean(exact)), float(np.mean(matches)), float(np.mean(rouges)),
                            float(np.mean(bleus)), per_doc)


def perplexity(model, tokenizer, docs: Sequence[dict], batch_size: int = 16) -> float:
    """Token-level perplexity of documents (``<bos>`` + text, truncated to the model's length)."""
    if not docs:
        raise UserError("no documents to measure perplexity on")
    limit = getattr(model.config, "max_position_embeddings", None) or 10 ** 9
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    encoded = []
    for doc in docs:
        ids = (bos + document_ids(tokenizer, doc["text"]))[:limit]
        if len(ids) >= 2:
            encoded.append(EncodedPair(input_ids=ids, start=1))
    if not encoded:
        raise UserError("documents are too short to measure perplexity (need 2 tokens)")
    scores = score_encoded(model, tokenizer, encoded, ScoringConfig(batch_size=batch_size))
    total_nll = sum(s.nll_sum for s in scores)
    total_tokens = sum(s.n_tokens for s in scores)
    return float(math.exp(total_nll / total_tokens))
