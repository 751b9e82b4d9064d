"""Typed configuration from YAML: nested dataclasses built from a mapping, unknown keys rejected with
the path that holds them, missing keys keeping their defaults in code."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml


def build_dataclass(cls: type, data: dict[str, Any] | None, where: str = "config") -> Any:
    """Instantiate dataclass *cls* from *data* (recursively for dataclass-valued fields); YAML lists
    become tuples where the default is a tuple."""
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(
            f"unknown config key(s) in {where}: {', '.join(unknown)}; allowed: {', '.join(fields)}"
        )
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        f = fields[name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default  # type: ignore[misc]
        if dataclasses.is_dataclass(default):
            kwargs[name] = build_dataclass(type(default), value, f"{where}.{name}")
        elif isinstance(default, tuple) and isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping, with clear errors for missing or malformed files."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"config file {p} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"config file {p} must contain a mapping at the top level")
    return data
