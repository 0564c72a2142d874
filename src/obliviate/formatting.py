"""How a metric value is printed in every markdown table (leaderboards, bench reports)."""

from __future__ import annotations

from typing import Any

MISSING = "–"


def format_metric(value: Any, digits: int = 3) -> str:
    """``digits`` decimals; tiny non-zero values in scientific notation; large ones as integers;
    ``None`` as a dash (the metric does not apply or could not be computed)."""
    if value is None:
        return MISSING
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.1e}"
        return f"{value:.{digits}f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)
