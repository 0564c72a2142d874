"""Which process this is under ``accelerate launch`` / ``torchrun`` (read from the launcher's
environment, so asking never starts a process group)."""

from __future__ import annotations

import os


def is_main_process() -> bool:
    """True in a plain run and in the launch's rank-0 process: the one that writes and reports."""
    return os.environ.get("RANK", "0") == "0"
