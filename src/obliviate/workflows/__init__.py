"""Workflows: the only layer that knows the run-directory layout (train, unlearn, evaluate with cache, demo, bench)."""
