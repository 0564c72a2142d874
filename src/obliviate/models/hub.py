"""``--model org/name``: a Hugging Face hub model id resolved to a local snapshot.

Every command loads models from a directory; a hub id is fetched once into the hub cache
(``huggingface_hub.snapshot_download``: offline, ``HF_HUB_OFFLINE=1``, it answers from the
cache) and the snapshot directory is used like any local model. Only safetensors weights,
configs and tokenizer files are fetched: pickled ``*.bin`` weights are never loaded, and
``trust_remote_code`` stays off unless a command is asked for it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from obliviate.errors import UserError

# owner/name as the hub spells repository ids (no leading dot or dash, one slash)
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
# configs, safetensors weights, tokenizer files (tokenizer.json, *.model, merges.txt, vocab.*, chat templates)
SNAPSHOT_FILES = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.tiktoken", "*.txt", "vocab.*", "*.jinja"]


def is_hub_id(text: str) -> bool:
    return bool(HUB_ID.match(text))


def resolve_model_path(path: str | os.PathLike, what: str = "model", revision: str | None = None) -> Path:
    """``path`` itself when it exists locally; else, for an ``org/name`` id, the local snapshot
    of that hub model; else a UserError saying the path does not exist."""
    path = Path(path)
    if path.exists():
        return path
    text = str(path)
    if not is_hub_id(text):
        raise UserError(f"{what} path does not exist: {path}")
    from huggingface_hub import snapshot_download

    try:
        local = Path(snapshot_download(text, revision=revision, allow_patterns=SNAPSHOT_FILES))
    except Exception as exc:  # offline, not found, gated, network: one line for the user
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
        hint = ("HF_HUB_OFFLINE is set and the hub cache holds no copy of it" if offline else
                "not a local path, and the hub did not give it (no network, a typo, or a gated model: "
                "`hf auth login`)")
        raise UserError(f"{what} {text!r}: {hint} ({type(exc).__name__}: {first})") from None
    if not (local / "config.json").is_file():
        raise UserError(f"{what} {text!r} on the hub has no config.json: not a transformers model")
    if not any(local.glob("*.safetensors")):
        raise UserError(f"{what} {text!r} on the hub has no safetensors weights (pickled *.bin weights are "
                        "not loaded); convert it with safetensors first")
    return local
