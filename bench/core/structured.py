"""Plain data (mappings, lists and scalars from YAML, JSON or the command line) read into a tree of
dataclasses, driven by the field types: the one converter behind the run spec (bench.run.spec_read), method
parameters (methods.params), the package data tables (bench.core.tables) and the cell record's parts
(bench.core.record).

`build(cls, data, rules, where)` reads the mapping `data` into `cls`: each key must be a field, each field
without a default must be given, and each value is read by its field's annotation (`typing.get_type_hints`):
a nested dataclass, `dict[str, X]`, `list[X]`, `tuple[X, ...]`, `Literal[...]`, a union (`X | None`: None
where the value means none; otherwise the first member that reads it), `Any`, or a scalar (str, int, float,
bool), which the rules' `scalar` reads. A list's items are read at the list's own place; a mapping's values at
`place.key`. The dataclass's own `__post_init__` checks run as it is built, and their errors pass through.

The callers differ only in their `Rules`: how a scalar is read (`lenient`: text to numbers and booleans, for
YAML and the command line; `exact`: the type as written, for package data; `json_shape`: the JSON kind, the
value kept as stored, for records), what means None, whether an unknown key is an error or kept (a record of a
newer harness round-trips: `unknown(obj)`), whether text is a comma-separated list, and fields read by a
function of their own. A mismatch raises `StructureError`, which says what was wrong and where, in parts, so
each caller words it for its users (ConfigError, TableError, RecordError).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bench.core import values

Problem = Literal["unknown key", "missing", "type", "choice", "too many"]
_UNKNOWN = "_unknown"  # the attribute of a built object that holds the keys it kept but does not declare


class StructureError(ValueError):
    """Plain data that does not fit its dataclass. `problem`: unknown key (`key`, `allowed`), missing
    (`missing`), type (`expected`: the type the value failed), choice (`expected`: the Literal), too many
    (a list longer than `Rules.max_items`); `where`: the place (`root.field.key`); `value`: what was given
    there; `owner`, `field`, `field_type`: the innermost dataclass field the place belongs to (None at the
    root)."""

    def __init__(self, problem: Problem, where: str, value: Any = None, *, expected: Any = None,
                 key: str | None = None, allowed: tuple[str, ...] = (), missing: tuple[str, ...] = ()):
        self.problem, self.where, self.value, self.expected = problem, where, value, expected
        self.key, self.allowed, self.missing = key, allowed, missing
        self.owner: type | None = None
        self.field: str | None = None
        self.field_type: Any = None
        detail = {"unknown key": f"{key!r} (allowed: {', '.join(allowed)})", "missing": ", ".join(missing),
                  "too many": f"{len(value) if hasattr(value, '__len__') else value} items"}.get(
            problem, f"{value!r} is not {describe(expected)}")
        super().__init__(f"{where or 'the data'}: {problem} {detail}")


# ------------------------------------------------------------------------------------------------ scalars


def lenient(value: Any, tp: type) -> Any:
    """YAML and command-line text: booleans and numbers from their text (bench.core.values), any single
    value as text; a mapping, a list or None is no scalar."""
    if tp is bool:
        return values.to_bool(value)
    if tp in (int, float):
        return values.to_number(value, tp)
    if isinstance(value, dict | list | tuple) or value is None:
        raise ValueError(value)
    return str(value)


def exact(value: Any, tp: type) -> Any:
    """The type as written (an int where a float is declared becomes a float; a boolean is no number)."""
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is not tp:
        raise ValueError(value)
    return value


def json_shape(value: Any, tp: type) -> Any:
    """The JSON kind only, the value kept as stored (an int in a float field stays an int, so a record
    writes back the same JSON)."""
    fits = isinstance(value, int | float) and not isinstance(value, bool) if tp in (int, float) else \
        isinstance(value, tp)
    if not fits:
        raise ValueError(value)
    return value


@dataclass(frozen=True)
class Rules:
    """How one kind of input is read (see the module docstring)."""

    scalar: Callable[[Any, type], Any] = lenient  # reads a str/int/float/bool field; raises ValueError
    is_none: Callable[[Any], bool] = lambda value: value is None  # what an optional field reads as None
    keep_unknown: bool = False    # unknown keys kept on the object (`unknown(obj)`) instead of an error
    split_text: bool = False      # "a, b" is a list of two, a single value a list of one; "" and "none" none
    true_is_defaults: bool = False  # `section: true` builds a dataclass field with its defaults
    read_items: bool = True       # False: a list's or mapping's items stay as given unless they hold dataclasses
    max_items: int | None = None  # a longer list is an error before its items are read
    readers: Mapping[tuple[type, str], Callable[[Any, str], Any]] = field(default_factory=dict)  # own readers


# ------------------------------------------------------------------------------------------------ building


def unknown(obj: Any) -> dict[str, Any]:
    """The keys `obj` was built from that its class does not declare (kept with `Rules.keep_unknown`)."""
    return obj.__dict__.get(_UNKNOWN, {})


def keep(obj: Any, extra: Mapping[str, Any]) -> Any:
    """`obj` holding `extra` as its unknown keys (a frozen dataclass too); returns `obj`."""
    obj.__dict__[_UNKNOWN] = dict(extra)
    return obj


def describe(tp: Any) -> str:
    """An annotation as an error message shows it: `int`, `float | None`, `dict[str, Any]`."""
    return tp.__name__ if isinstance(tp, type) and not typing.get_args(tp) else str(tp).replace("typing.", "")


@functools.cache
def _schema(cls: type) -> tuple[dict[str, Any], tuple[str, ...], tuple[str, ...]]:
    """(field name -> annotation, the field names, the required ones) of dataclass `cls`."""
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    required = tuple(f.name for f in fields if f.default is dataclasses.MISSING
                     and f.default_factory is dataclasses.MISSING)
    return {f.name: hints[f.name] for f in fields}, tuple(f.name for f in fields), required


def _join(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def build(cls: type, data: Any, rules: Rules, where: str = "") -> Any:
    """An instance of dataclass `cls` from the mapping `data` (see the module docstring); `where` names the
    root place in errors (a file and entry, a method, "" for the run spec)."""
    kwargs, extra = _fields(cls, data, rules, where)
    missing = tuple(name for name in _schema(cls)[2] if name not in kwargs)
    if missing:
        raise StructureError("missing", where, missing=missing)
    obj = cls(**kwargs)
    return keep(obj, extra) if extra else obj


def read_fields(cls: type, data: Any, rules: Rules, where: str = "") -> dict[str, Any]:
    """The typed keyword arguments of `cls` for the mapping `data`, without building `cls` (a layer of a
    spec checked before the layers above it complete it)."""
    return _fields(cls, data, rules, where)[0]


def _fields(cls: type, data: Any, rules: Rules, where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if not isinstance(data, dict):
        raise StructureError("type", where, data, expected=cls)
    hints, names, _ = _schema(cls)
    kwargs, extra = {}, {}
    for key, value in data.items():
        if key not in hints:
            if not rules.keep_unknown:
                raise StructureError("unknown key", where, key=str(key), allowed=names)
            extra[key] = value
            continue
        place = _join(where, key)
        try:
            reader = rules.readers.get((cls, key))
            kwargs[key] = reader(value, place) if reader else read(value, hints[key], rules, place)
        except StructureError as exc:
            if exc.owner is None:
                exc.owner, exc.field, exc.field_type = cls, key, hints[key]
            raise
    return kwargs, extra


def _holds_dataclass(tp: Any) -> bool:
    return dataclasses.is_dataclass(tp) or any(_holds_dataclass(a) for a in typing.get_args(tp))


def read(value: Any, tp: Any, rules: Rules, where: str) -> Any:
    """`value` read as the annotation `tp` at place `where`."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and rules.is_none(value):
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return read(value, arg, rules, where)
            except StructureError as exc:
                errors.append(exc)
        raise errors[0] if errors else StructureError("type", where, value, expected=tp)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise StructureError("choice", where, value, expected=tp)
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, {} if value is True and rules.true_is_defaults else value, rules, where)
    if tp in (list, tuple) or origin in (list, tuple):
        return _sequence(value, tp, rules, where)
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise StructureError("type", where, value, expected=tp)
        args = typing.get_args(tp)
        if not args or not (rules.read_items or _holds_dataclass(args[1])):
            return value if not rules.read_items else dict(value)
        return {k: read(v, args[1], rules, _join(where, k)) for k, v in value.items()}
    if tp in (str, int, float, bool):
        try:
            return rules.scalar(value, tp)
        except (TypeError, ValueError):
            raise StructureError("type", where, value, expected=tp) from None
    return value  # another class: taken as given


def _sequence(value: Any, tp: Any, rules: Rules, where: str) -> Any:
    container = typing.get_origin(tp) or tp
    if rules.split_text and isinstance(value, str):
        value = [] if value.strip().lower() in ("", "none") else [v.strip() for v in value.split(",")]
    elif rules.split_text and not isinstance(value, list | tuple):
        value = [value]
    if not isinstance(value, list | tuple):
        raise StructureError("type", where, value, expected=tp)
    if rules.max_items is not None and len(value) > rules.max_items:
        raise StructureError("too many", where, value, expected=tp)
    args = [a for a in typing.get_args(tp) if a is not Ellipsis]
    if not args or not (rules.read_items or any(_holds_dataclass(a) for a in args)):
        return value if not rules.read_items else container(value)
    if len(args) > 1:  # tuple[A, B]: one item of each
        if len(value) != len(args):
            raise StructureError("type", where, value, expected=tp)
        return container(read(v, a, rules, where) for v, a in zip(value, args, strict=True))
    return container(read(v, args[0], rules, where) for v in value)
