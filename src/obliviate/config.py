"""Typed dataclass configs: dotted ``key=value`` overrides and YAML presets."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

from obliviate.errors import UserError

T = TypeVar("T")


def parse_assignments(assignments: Sequence[str]) -> dict[str, str]:
    """``["lr=1e-4", "retain.weight=2"]`` -> ``{"lr": "1e-4", "retain.weight": "2"}``."""
    parsed: dict[str, str] = {}
    for item in assignments:
        if "=" not in item:
            raise UserError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        key = key.strip()
        if not key:
            raise UserError(f"--set expects key=value, got {item!r}")
        parsed[key] = value.strip()
    return parsed


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    if not isinstance(value, str):
        return value
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value.lower() in ("none", "null") and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key) if inner else value
    try:
        if annotation is bool:
            lowered = value.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if annotation is int:
            return int(float(value)) if "e" in value.lower() else int(value)
        if annotation is float:
            return float(value)
        if annotation is str:
            return value
        if origin in (list, tuple) or annotation in (list, tuple):
            text = value.strip()
            items = json.loads(text) if text.startswith("[") else [v for v in text.split(",") if v]
            elem = args[0] if args else str
            coerced = [_coerce(str(v), elem, key) if not isinstance(v, (int, float)) else v for v in items]
            return tuple(coerced) if (origin is tuple or annotation is tuple) else coerced
    except (ValueError, json.JSONDecodeError):
        raise UserError(f"bad value for {key}: {value!r} (expected {getattr(annotation, '__name__', annotation)})") from None
    return value


def apply_overrides(config: T, overrides: Mapping[str, Any]) -> T:
    """Return a copy of dataclass ``config`` with (dotted) overrides applied and type-checked."""
    if not overrides:
        return config
    nested: dict[str, dict[str, Any]] = {}
    flat: dict[str, Any] = {}
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            flat[key] = value
    fields = {f.name: f for f in dataclasses.fields(config)}
    hints = typing.get_type_hints(type(config))
    changes: dict[str, Any] = {}
    for key, value in flat.items():
        if key not in fields:
            raise UserError(f"unknown setting {key!r} for {type(config).__name__}; valid: {', '.join(sorted(fields))}")
        changes[key] = _coerce(value, hints[key], key)
    for head, sub in nested.items():
        if head not in fields or not dataclasses.is_dataclass(getattr(config, head)):
            raise UserError(f"unknown setting group {head!r} for {type(config).__name__}")
        changes[head] = apply_overrides(getattr(config, head), sub)
    return dataclasses.replace(config, **changes)


def config_to_dict(config: Any) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def load_yaml_overrides(path: str | Path) -> dict[str, str]:
    """A YAML preset (``--config FILE.yaml``) as flat dotted overrides, e.g.
    ``{"epochs": 3, "sinks": {"p_gen": 0.3}}`` -> ``{"epochs": "3", "sinks.p_gen": "0.3"}``:
    the same strings ``--set`` gives, so both are type-checked by ``apply_overrides``."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"config file {path} is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a mapping of settings (key: value), got {type(data).__name__}")
    flat: dict[str, str] = {}

    def walk(prefix: str, node: Mapping[str, Any]) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, Mapping):
                walk(name + ".", value)
            elif isinstance(value, str):
                flat[name] = value
            elif isinstance(value, (list, tuple)):
                flat[name] = json.dumps(list(value), default=str)
            elif isinstance(value, bool):
                flat[name] = "true" if value else "false"
            else:
                flat[name] = "none" if value is None else str(value)

    walk("", data)
    return flat


def collect_overrides(config_file: str | Path | None, assignments: Sequence[str]) -> dict[str, str]:
    """Settings for one command: the YAML preset's values first, then ``--set`` (which wins)."""
    overrides = load_yaml_overrides(config_file) if config_file is not None else {}
    overrides.update(parse_assignments(assignments))
    return overrides
