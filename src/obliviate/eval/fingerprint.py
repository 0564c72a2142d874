"""Content fingerprints of models and the cache key of an evaluation."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

_CHUNK = 1 << 20


def _defines_model(relative: Path) -> bool:
    if any(part.startswith(".") for part in relative.parts):
        return False
    if len(relative.parts) > 1 and relative.parts[0] == "logs":   # training logs (obliviate.tracking.LOGS_DIR)
        return False
    name = relative.name.lower()
    return not (name.endswith(".md") or (name.startswith("eval") and name.endswith(".json")))


def model_dir_fingerprint(path: str | os.PathLike) -> str:
    """Hash of every file in a model directory (weights, config, tokenizer), by content.

    Content, not mtime: a retrained model with new weights always gets a new fingerprint.
    Files that do not define the model are skipped: hidden (temporary, cache) files,
    markdown, evaluation results written beside the weights (``eval*.json``) and the
    training logs in ``logs/`` (event files and evaluations, written by ``--report-to`` and
    ``--eval-every``: tracking never changes a model's cache key).
    """
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = file.relative_to(root)
        if not _defines_model(relative):
            continue
        digest.update(str(relative.as_posix()).encode() + b"\0")
        with open(file, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def model_state_fingerprint(model) -> str:
    """Hash of an in-memory model's parameters, buffers and config."""
    digest = hashlib.sha256()
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_json_string"):
        digest.update(config.to_json_string(use_diff=False).encode())
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            digest.update(name.encode() + str(tuple(tensor.shape)).encode() + str(tensor.dtype).encode())
            data = tensor.detach().to("cpu").contiguous().reshape(-1)
            digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()[:16]


def cache_key(model_fingerprint: str, world_fingerprint: str, forget: str, metric_config: dict) -> str:
    payload = json.dumps({"model": model_fingerprint, "world": world_fingerprint, "forget": forget,
                          "metrics": metric_config}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
