"""Method parameters from the command line (`--param name=value`) or YAML, validated against a dataclass."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, get_args, get_origin

from bench.core import values
from bench.core.errors import ConfigError, UnknownNameError


def parse_param_args(items: list[str] | None) -> dict[str, str]:
    """["a=1", "b=x"] -> {"a": "1", "b": "x"}; a malformed item is a ConfigError."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"malformed --param {item!r}", "write --param name=value")
        out[name.strip()] = value.strip()
    return out


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = get_origin(tp)
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where} must be one of {', '.join(map(str, choices))}, not {value!r}",
                              f"e.g. --param {where.split('.')[-1]}={choices[0]}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if values.is_none(value) or value == "":
            return None
        return _convert(value, args[0], where)
    try:
        if tp is bool:
            return values.to_bool(value)
        if tp in (int, float):
            return values.to_number(value, tp)
        if tp is str:
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} expects {tp.__name__}, got {value!r}", "check the value's type") from None
    return value


def build_params(cls: type, values: dict[str, Any], method: str = "method"):
    """Instantiate params dataclass `cls` from `values`, converting strings; unknown names raise."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in values.items():
        if name not in fields:
            raise UnknownNameError("parameter", name, fields, owner=method)
        kwargs[name] = _convert(value, hints[name], f"{method}.{name}")
    try:
        return cls(**kwargs)
    except ValueError as exc:  # a params class's own __post_init__ range check
        raise ConfigError(f"bad parameters for {method}: {exc}", "see `bench ls methods`") from None


def describe_params(cls: type) -> list[dict[str, Any]]:
    hints = typing.get_type_hints(cls)
    return [{"name": f.name, "type": getattr(hints[f.name], "__name__", str(hints[f.name])),
             "default": f.default} for f in dataclasses.fields(cls)]
