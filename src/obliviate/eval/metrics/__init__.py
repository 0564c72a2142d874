"""Metric definitions (docs/design.md, "Metric definitions"): pure functions on scores and texts."""
