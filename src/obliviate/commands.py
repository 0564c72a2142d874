"""Registers the commands that live in other modules on the Typer app."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
