"""Batched generation on the served model: one thread owns the model, requests queue for it.

Greedy requests waiting together run as one left-padded ``model.generate`` call (up to
``max_batch``); sampled requests run alone (their seed then means what it says). The
served model (``Served``) and the state version are read once per batch, under the state
lock that deletions take to change them: every request in a batch arrived before the
batch began, so a request that starts after a deletion's response runs on a batch that
sees it.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

import torch

from obliviate.errors import UserError
from obliviate.eval.scoring import model_device, pad_batch, pad_token_id


@dataclass
class Served:
    """The model being served and what identifies it."""

    model: object
    tokenizer: object
    model_dir: str
    model_hash: str
    is_sink: bool


@dataclass
class GenerationRequest:
    prompt: str
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    future: Future = field(default_factory=Future)
    input_ids: list[int] = field(default_factory=list)   # set by the generation thread

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass
class Completion:
    text: str
    finish_reason: str          # "stop" (EOS or a stop string) or "length"
    prompt_tokens: int
    completion_tokens: int
    state_version: int          # deletions applied when the batch began
    model_hash: str


def cut_at_stop(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    positions = [text.find(s) for s in stops if s and s in text]
    return (text[:min(positions)], True) if positions else (text, False)


class Batcher:
    """Runs generation requests on a thread; ``snapshot`` returns (Served, state version)."""

    def __init__(self, snapshot: Callable[[], tuple[Served, int]], max_batch: int = 16):
        self.snapshot = snapshot
        self.max_batch = max_batch
        self._queue: queue.Queue[GenerationRequest | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="obliviate-generation", daemon=True)
        self.batches = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def submit(self, request: GenerationRequest) -> Future:
        self._queue.put(request)
        return request.future

    def _take_batch(self) -> list[GenerationRequest] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        if first.greedy:
            held = []
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    held.append(item)
                    break
                (batch if item.greedy else held).append(item)
            for item in held:   # sampled requests (and a stop) wait for the next round, in order
                self._queue.put(item)
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            try:
                served, version = self.snapshot()
                batch = self._drop_empty(served, batch)
                results = self._generate(served, version, batch) if batch else []
            except Exception as exc:   # handed to the requests: the endpoint answers with a JSON error
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(exc)
                continue
            self.batches += 1
            for request, result in zip(batch, results):
                request.future.set_result(result)

    @staticmethod
    def _drop_empty(served: Served, batch: list[GenerationRequest]) -> list[GenerationRequest]:
        """Requests whose prompt encodes to no token fail alone (a tokenizer that adds no BOS)."""
        kept = []
        for request in batch:
            request.input_ids = served.tokenizer(request.prompt)["input_ids"]
            if request.input_ids:
                kept.append(request)
            else:
                request.future.set_exception(UserError("the prompt is empty (this model's tokenizer adds no BOS "
                                                       "token to start from)"))
        return kept

    @torch.inference_mode()
    def _generate(self, served: Served, version: int, batch: list[GenerationRequest]) -> list[Completion]:
        model, tokenizer = served.model, served.tokenizer
        limit = getattr(model.config, "max_position_embeddings", None) or 1 << 30
        longest = max(r.max_tokens for r in batch)
        room = max(limit - longest, 1)
        encoded = [r.input_ids[-room:] for r in batch]   # keep the end of a long prompt
        pad_id = pad_token_id(tokenizer)
        input_ids, attention_mask = pad_batch(encoded, pad_id, "left")
        device = model_device(model)
        eos = tokenizer.eos_token_id
        if eos is None:
            eos = getattr(model.config, "eos_token_id", None)
        eos_ids = set(eos) if isinstance(eos, (list, tuple)) else ({eos} if eos is not None else set())
        first = batch[0]
        kwargs = {"do_sample": False} if first.greedy else {"do_sample": True, "temperature": first.temperature,
                                                          "top_p": first.top_p}
        if not first.greedy and first.seed is not None:
            torch.manual_seed(first.seed)
        generated = model.generate(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                                   max_new_tokens=longest, pad_token_id=pad_id, eos_token_id=eos, num_beams=1,
                                   **kwargs)
        new_tokens = generated[:, input_ids.shape[1]:].cpu().tolist()
        results = []
        for request, prompt_ids, tokens in zip(batch, encoded, new_tokens):
            tokens = tokens[:request.max_tokens]
            end = next((i for i, token in enumerate(tokens) if token in eos_ids), None)
            stopped = end is not None
            if stopped:
                tokens = tokens[:end]
            text, cut = cut_at_stop(tokenizer.decode(tokens, skip_special_tokens=True), request.stop)
            results.append(Completion(text=text, finish_reason="stop" if stopped or cut else "length",
                                      prompt_tokens=len(prompt_ids), completion_tokens=len(tokens),
                                      state_version=version, model_hash=served.model_hash))
        return results
