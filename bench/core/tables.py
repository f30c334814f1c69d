"""Package data files (YAML) read into frozen dataclasses, validated on load: the model zoo
(`bench/zoo.yaml`), the run presets (`bench/presets.yaml`) and the task tables (`bench/data/tasks.yaml`).

`rows(package, filename, cls)` reads a list of mappings and builds one `cls` per entry: every key must be a
field (a close match is suggested), every field without a default must be given, and each value must have
its field's type (str, int, float, bool, None, list/tuple, dict, or a nested dataclass). A broken file is
a bug of the package, so it fails loudly at import, naming the file, the entry and the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from importlib import resources
from typing import Any


class TableError(ValueError):
    """A package data file that does not match its schema."""


@functools.cache
def load(package: str, filename: str) -> Any:
    """The parsed YAML of a package data file."""
    import yaml

    return yaml.safe_load(resources.files(package).joinpath(filename).read_text(encoding="utf-8"))


def rows(package: str, filename: str, cls: type, key: str | None = None) -> list[Any]:
    """Every entry of the file (a list, or the list under `key`) as a validated `cls`."""
    data = load(package, filename)
    if key is not None:
        data = data.get(key) if isinstance(data, dict) else None
    where = f"{package}/{filename}" + (f" [{key}]" if key else "")
    if not isinstance(data, list):
        raise TableError(f"{where}: expected a list of entries")
    return [build(cls, entry, f"{where} entry {i}") for i, entry in enumerate(data)]


def build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise TableError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in data:
        if name not in fields:
            close = difflib.get_close_matches(str(name), list(fields), n=1)
            raise TableError(f"{where}: unknown key {name!r}" + (f" (did you mean {close[0]}?)" if close else ""))
    missing = [n for n, f in fields.items() if n not in data and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise TableError(f"{where}: missing {', '.join(missing)}")
    return cls(**{name: _value(value, hints[name], f"{where}.{name}") for name, value in data.items()})


def _value(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return None
        errors = []
        for arg in (a for a in typing.get_args(tp) if a is not type(None)):
            try:
                return _value(value, arg, where)
            except TableError as exc:
                errors.append(str(exc))
        raise TableError(errors[0] if errors else f"{where}: bad value {value!r}")
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    if origin in (tuple, list):
        if not isinstance(value, list):
            raise TableError(f"{where}: expected a list, got {value!r}")
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        items = [_value(v, args[0], where) for v in value] if args else list(value)
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise TableError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (str, int, float, bool) and (type(value) is not tp):
        raise TableError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value
