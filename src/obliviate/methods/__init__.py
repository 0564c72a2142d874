"""Unlearning methods, one module each, behind a registry."""

from obliviate.methods.registry import UnlearningMethod, UnlearnTask, available_methods, get_method, register

__all__ = ["UnlearnTask", "UnlearningMethod", "available_methods", "get_method", "register"]
