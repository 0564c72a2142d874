"""Metric definitions (DESIGN.md, "Metric definitions"): pure functions on scores and texts."""
