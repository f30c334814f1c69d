"""One rule for turning a given value (YAML, a command-line string, `--param name=value`) into a typed
scalar, the lenient reading of bench.core.structured behind the run spec (bench.run.spec_read) and method
parameters (methods.params).

Booleans: true/false, or the strings true/false, yes/no, on/off, 1/0 (any case). Numbers: a number or
its text; an int field takes a whole number only; a boolean is never a number. None: None or the strings
none/null (for optional fields). Errors are `ValueError`s with no message: the caller says where.
"""

from __future__ import annotations

from typing import Any

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})
NONE = frozenset({"none", "null"})


def is_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in NONE)


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, str | int) else None
    if text in TRUE | FALSE:
        return text in TRUE
    raise ValueError(value)


def to_number(value: Any, tp: type) -> int | float:
    """`value` as `tp` (int or float)."""
    if isinstance(value, bool) or value is None or isinstance(value, dict | list | tuple):
        raise ValueError(value)
    number = float(value) if tp is float or isinstance(value, float) else int(str(value).strip())
    if tp is int:
        if isinstance(number, float) and not number.is_integer():
            raise ValueError(value)
        return int(number)
    return float(number)
