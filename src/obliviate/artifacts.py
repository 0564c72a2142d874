"""Content fingerprints (cache keys) and what makes a directory a saved model."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def fingerprint(obj) -> str:
    """Stable short hash of a JSON-able object (cache keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_fingerprint(paths: list[Path]) -> str:
    """Short hash of these files' names and bytes (order-independent)."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def is_model_dir(path: Path) -> bool:
    """A ``save_pretrained`` directory with a config and safetensors weights."""
    return path.is_dir() and (path / "config.json").is_file() and any(path.glob("*.safetensors"))
