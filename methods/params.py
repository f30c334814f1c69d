"""Method parameters from the command line (`--param name=value`) or YAML, read into the method's params
dataclass by the harness's one converter (bench.core.structured) and validated."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from bench.core import structured, values
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


# `--param name=value` text, or a YAML value; an empty value or none/null clears an optional parameter
_RULES = structured.Rules(is_none=lambda value: values.is_none(value) or value == "")


def build_params(cls: type, given: dict[str, Any], method: str = "method"):
    """Instantiate params dataclass `cls` from `given` (bench.core.structured), converting strings; unknown
    names raise."""
    try:
        return structured.build(cls, given, _RULES, method)
    except structured.StructureError as exc:
        raise _error(exc, method) from None
    except ValueError as exc:  # a params class's own __post_init__ range check
        raise ConfigError(f"bad parameters for {method}: {exc}", "see `bench ls methods`") from None


def _error(exc: structured.StructureError, method: str) -> Exception:
    if exc.problem == "unknown key":
        return UnknownNameError("parameter", exc.key, exc.allowed, owner=method)
    if exc.problem == "choice":
        choices = typing.get_args(exc.expected)
        return ConfigError(f"{exc.where} must be one of {', '.join(map(str, choices))}, not {exc.value!r}",
                           f"e.g. --param {exc.field}={choices[0]}")
    if exc.problem == "missing":
        return ConfigError(f"{method} needs the parameters {', '.join(exc.missing)}", "see `bench ls methods`")
    name = getattr(exc.expected, "__name__", str(exc.expected))
    return ConfigError(f"{exc.where} expects {name}, got {exc.value!r}", "check the value's type")


def describe_params(cls: type) -> list[dict[str, Any]]:
    hints = typing.get_type_hints(cls)
    return [{"name": f.name, "type": getattr(hints[f.name], "__name__", str(hints[f.name])),
             "default": f.default} for f in dataclasses.fields(cls)]
