"""User text files as WHP target (or generic) documents: ``--set target_paths=...`` and
``obliviate whp anchors --text/--generic``."""

from __future__ import annotations

from pathlib import Path

from obliviate.errors import UserError


def read_text_files(paths) -> list[str]:
    """User text files as target documents (one document per file); UserError if unusable."""
    texts = []
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise UserError(f"target text file not found: {path}")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise UserError(f"target text file {path} is not UTF-8 text") from None
        if not text.strip():
            raise UserError(f"target text file {path} is empty")
        texts.append(text)
    return texts
