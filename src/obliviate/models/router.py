"""Query router for sink models: send a text to the training source it resembles most.

A text is described by the TF-IDF-weighted sum of its token embeddings (the model's
own input embedding table): token weights are inverse *source* frequencies, so the
template words every source shares ("Question", "Answer", "the") weigh nothing and
the names and rare words that tell sources apart carry the vector. Each source's
centroid is the same description of all its training texts; a query goes to the
source with the highest cosine similarity. Centroids, source ids and token weights
are buffers, so ``save_pretrained`` stores them in the safetensors file.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn


class SourceRouter(nn.Module):
    def __init__(self, n_sources: int, vocab_size: int, hidden_size: int):
        super().__init__()
        fitted = n_sources > 0
        self.register_buffer("source_ids", torch.zeros(n_sources, dtype=torch.long))
        self.register_buffer("centroids", torch.zeros(n_sources, hidden_size))
        self.register_buffer("token_weights", torch.zeros(vocab_size if fitted else 0))

    @property
    def fitted(self) -> bool:
        return self.source_ids.numel() > 0

    def known_sources(self) -> list[int]:
        return [int(s) for s in self.source_ids.tolist()]

    @torch.no_grad()
    def fit(self, embedding: torch.Tensor, token_ids_by_source: Mapping[int, Sequence[Sequence[int]]]) -> None:
        """Compute token weights and per-source centroids from each source's tokenised texts."""
        sources = sorted(int(s) for s in token_ids_by_source)
        vocab_size, device = embedding.shape[0], embedding.device
        table = embedding.detach().float().cpu()

        def counts_of(source: int) -> torch.Tensor:
            flat = torch.tensor([t for ids in token_ids_by_source[source] for t in ids], dtype=torch.long)
            return torch.bincount(flat, minlength=vocab_size)[:vocab_size].float()

        # two streaming passes (document frequency, then centroids) keep memory at O(vocab + sources x hidden)
        document_frequency = torch.zeros(vocab_size)
        for source in sources:
            document_frequency += counts_of(source) > 0
        # smoothed IDF over sources; a token in every source weighs exactly 0, an unseen token too
        weights = torch.log((len(sources) + 1) / (document_frequency + 1))
        weights[document_frequency == 0] = 0.0
        centroids = torch.zeros(len(sources), table.shape[1])
        for row, source in enumerate(sources):
            counts = counts_of(source)
            centroids[row] = (counts / counts.sum().clamp_min(1.0) * weights) @ table
        self.source_ids = torch.tensor(sources, dtype=torch.long, device=device)
        self.centroids = nn.functional.normalize(centroids, dim=-1).to(device)
        self.token_weights = weights.to(device)

    @torch.no_grad()
    def drop_sources(self, ids) -> list[int]:
        """Remove these sources (their ids and centroid rows) so no query can be routed to them;
        returns the ids dropped (ids the router does not know are ignored). The token weights
        (IDF over every source fitted, dropped ones included) are kept: they cannot be
        recomputed without the training texts."""
        drop = torch.tensor(sorted({int(s) for s in ids}), dtype=torch.long, device=self.source_ids.device)
        gone = torch.isin(self.source_ids, drop)
        dropped = [int(s) for s in self.source_ids[gone].tolist()]
        self.source_ids = self.source_ids[~gone].clone()
        self.centroids = self.centroids[~gone].clone()
        return dropped

    def query_features(
        self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """``[batch, hidden]`` unit vectors describing each row (padding excluded)."""
        if input_ids is not None:
            weights = self.token_weights.float()[input_ids]
        else:
            # no token ids (embeddings given directly): weigh every position alike
            weights = torch.ones(inputs_embeds.shape[:2], device=inputs_embeds.device)
        if attention_mask is not None and attention_mask.dim() == 2:
            weights = weights * attention_mask[:, -weights.shape[1]:].to(weights.dtype)
        features = (weights.unsqueeze(-1) * inputs_embeds.detach().float()).sum(1)
        return nn.functional.normalize(features, dim=-1)

    def similarities(self, features: torch.Tensor) -> torch.Tensor:
        """Cosine similarity ``[batch, n_sources]``."""
        return features @ self.centroids.float().T

