"""Run the command line in-process where a fixture needs it to succeed (module- or
session-scoped fixtures cannot use the function-scoped ``cli`` fixture of conftest)."""

from __future__ import annotations


def run_cli(*args) -> None:
    """``obliviate ARGS`` in this process; fails the test with the command when it exits non-zero."""
    from obliviate.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        assert exc.code in (0, None), f"obliviate {' '.join(map(str, args))} exited {exc.code}"
