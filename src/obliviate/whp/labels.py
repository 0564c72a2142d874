"""Generic labels: ``v_generic = v_base(translated) - alpha * relu(v_reinforced(original) - v_base(translated))``.

The ReLU keeps only tokens the reinforcement made MORE likely: a token whose logit
fell in the reinforced model leaves the base prediction unchanged. Tokens of
translations already used in the block are then forbidden (logit := the mean logit),
and so, beyond the paper, are the first tokens of the anchored terms themselves: the
base model still knows the target, and where the text around an anchor is specific
enough (a description of the hero) v_base(translated) still predicts the anchor: on the
tiny saga 31% of the positions before an anchor got the anchor as their "generic" label
at alpha 5, and 138 other positions got an anchor where the text has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from obliviate.errors import UserError
from obliviate.whp.terms import STOPWORDS
from obliviate.whp.translation import TranslatedBlock


def generic_logits(base_logits: torch.Tensor, reinforced_logits: torch.Tensor, alpha: float) -> torch.Tensor:
    """The WHP combination, elementwise over the vocabulary (any leading shape)."""
    if base_logits.shape != reinforced_logits.shape:
        raise UserError(f"base and reinforced logits differ in shape: {tuple(base_logits.shape)} vs "
                        f"{tuple(reinforced_logits.shape)} (do the models share a vocabulary?)")
    return base_logits - alpha * torch.relu(reinforced_logits - base_logits)


def forbid_tokens(logits: torch.Tensor, forbidden: Sequence[Sequence[int]]) -> torch.Tensor:
    """Set, row by row, the logits of the forbidden token ids to that row's mean logit."""
    logits = logits.clone()
    rows = [row for row, token_ids in enumerate(forbidden) for _ in token_ids]
    if rows:
        cols = [token for token_ids in forbidden for token in token_ids]
        rows_t = torch.tensor(rows, device=logits.device)
        means = logits.mean(dim=-1)
        logits[rows_t, torch.tensor(cols, device=logits.device)] = means[rows_t]
    return logits


@dataclass
class BlockTargets:
    """Training targets for one block of original text."""

    input_ids: list[int]
    positions: list[int]                 # original positions k whose prediction (of token k+1) is trained
    hard_labels: list[int]               # argmax of v_generic at each position
    soft_ids: torch.Tensor | None = None     # (len(positions), K) token ids of the kept soft-label mass
    soft_probs: torch.Tensor | None = None   # (len(positions), K) renormalised probabilities

    def agreement(self) -> float:
        """Share of trained positions whose generic label equals the original next token."""
        if not self.positions:
            return 1.0
        same = sum(self.input_ids[k + 1] == label for k, label in zip(self.positions, self.hard_labels))
        return same / len(self.positions)


def soft_targets(logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(logits), kept as its top-k entries renormalised (top_k <= 0: the whole vocabulary)."""
    probs = torch.softmax(logits.float(), dim=-1)
    vocab = probs.shape[-1]
    if top_k <= 0 or top_k >= vocab:
        ids = torch.arange(vocab, device=probs.device).expand(probs.shape[0], vocab).clone()
        return ids, probs
    kept, ids = probs.topk(top_k, dim=-1)
    return ids, kept / kept.sum(dim=-1, keepdim=True)


def anchor_start_tokens(tokenizer, anchors: Mapping[str, Sequence[str]]) -> list[int]:
    """Token ids that begin an anchored term (with and without a leading space), minus those
    that also begin a generic alternative or are common words ("The" of "The Lantern")."""
    def first_tokens(text: str) -> set[int]:
        found = set()
        for variant in (text, " " + text):
            ids = tokenizer(variant, add_special_tokens=False)["input_ids"]
            if ids:
                found.add(ids[0])
        return found

    starts = set().union(*(first_tokens(term) for term in anchors)) if anchors else set()
    generic = set().union(*(first_tokens(alt) for alts in anchors.values() for alt in alts)) if anchors else set()
    common = {t for t in starts if tokenizer.decode([t]).strip().lower() in STOPWORDS}
    return sorted(starts - generic - common)


def unlikelihood_tokens(tokenizer, anchor_tokens: Sequence[int], suppressed_terms: Sequence[str] = ()) -> list[int]:
    """Tokens the fine-tuning pushes down everywhere (``WHPConfig.anchor_unlikelihood``): the
    anchors' first tokens that are whole word starts (two or more characters: a lone "F" of
    "Femlihall" written without a space is also the start of ordinary words), plus the word-start
    token of every suppressed term (" spell" of "spell")."""
    def word_piece(token_id: int) -> bool:
        return len(tokenizer.decode([token_id]).strip()) >= 2

    kept = {t for t in anchor_tokens if word_piece(t)}
    for term in suppressed_terms:
        ids = tokenizer(" " + term.strip(), add_special_tokens=False)["input_ids"]
        if ids and word_piece(ids[0]):
            kept.add(ids[0])
    return sorted(kept)


def block_generic_logits(block: TranslatedBlock, base_logits: torch.Tensor, reinforced_logits: torch.Tensor,
                         alpha: float, anchor_tokens: Sequence[int] = ()) -> tuple[list[int], torch.Tensor]:
    """Trained positions of a block and their v_generic rows (forbidden tokens applied).

    ``base_logits``: (len(translated_ids), V) from the base model on the translation;
    ``reinforced_logits``: (len(original_ids), V) from the reinforced model on the original.
    ``anchor_tokens``: forbidden at every position (a generic label never starts an anchor).
    """
    positions = [k for k, trained in enumerate(block.train_mask) if trained]
    if not positions:
        return positions, base_logits.new_zeros((0, base_logits.shape[-1]))
    mapped = [block.position_map[k] for k in positions]
    combined = generic_logits(base_logits[mapped].float(), reinforced_logits[positions].float(), alpha)
    forbidden = [sorted(set(block.forbidden[k]) | set(anchor_tokens)) for k in positions]
    return positions, forbid_tokens(combined, forbidden)


def _padded(sequences: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids.to(device), mask.to(device)


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def compute_generic_targets(
    base_model,
    reinforced_model,
    blocks: Sequence[TranslatedBlock],
    alpha: float = 5.0,
    soft: bool = False,
    soft_top_k: int = 64,
    batch_size: int = 8,
    pad_id: int = 0,
    anchor_tokens: Sequence[int] = (),
) -> list[BlockTargets]:
    """Run the base model on translated blocks and the reinforced model on the originals (right
    padding: real positions are unaffected) and turn mapped logits into generic labels.
    ``anchor_tokens`` (see :func:`anchor_start_tokens`) are forbidden in every label."""
    base_was_training, reinforced_was_training = base_model.training, reinforced_model.training
    base_model.eval()
    reinforced_model.eval()
    targets: list[BlockTargets] = []
    try:
        for start in range(0, len(blocks), batch_size):
            batch = blocks[start: start + batch_size]
            ids_t, mask_t = _padded([b.translated_ids for b in batch], pad_id, _device(base_model))
            ids_o, mask_o = _padded([b.original_ids for b in batch], pad_id, _device(reinforced_model))
            # logits stay on the device; only the mapped rows are combined and only labels come back
            base_logits = base_model(input_ids=ids_t, attention_mask=mask_t).logits
            reinforced_logits = reinforced_model(input_ids=ids_o, attention_mask=mask_o).logits.to(base_logits.device)
            if base_logits.shape[-1] != reinforced_logits.shape[-1]:
                raise UserError(f"the reinforced model has {reinforced_logits.shape[-1]} output tokens but the base "
                                f"model has {base_logits.shape[-1]}: they must share one vocabulary")
            for row, block in enumerate(batch):
                positions, combined = block_generic_logits(
                    block, base_logits[row, : len(block.translated_ids)],
                    reinforced_logits[row, : len(block.original_ids)], alpha, anchor_tokens)
                hard = combined.argmax(dim=-1).tolist() if positions else []
                target = BlockTargets(list(block.original_ids), positions, hard)
                if soft and positions:
                    soft_ids, soft_probs = soft_targets(combined, soft_top_k)
                    target.soft_ids, target.soft_probs = soft_ids.cpu(), soft_probs.cpu()
                targets.append(target)
    finally:
        base_model.train(base_was_training)
        reinforced_model.train(reinforced_was_training)
    return targets
