"""Package data files (YAML) read into frozen dataclasses, validated on load: the model zoo
(`bench/zoo.yaml`), the run presets (`bench/presets.yaml`) and the task tables (`bench/data/tasks.yaml`).

`rows(package, filename, cls)` reads a list of mappings and builds one `cls` per entry with the harness's one
converter (bench.core.structured), types taken exactly: every key must be a field (a close match is
suggested), every field without a default must be given, and each value must have its field's type (str,
int, float, bool, None, list/tuple, dict, or a nested dataclass). A broken file is
a bug of the package, so it fails loudly at import, naming the file, the entry and the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import typing
from importlib import resources
from typing import Any

from bench.core import structured


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


_RULES = structured.Rules(scalar=structured.exact)  # a package file states its types exactly


def build(cls: type, data: Any, where: str) -> Any:
    """One entry as a `cls` (bench.core.structured), a mismatch worded as a TableError."""
    try:
        return structured.build(cls, data, _RULES, where)
    except structured.StructureError as exc:
        raise TableError(_message(exc)) from None


def _message(exc: structured.StructureError) -> str:
    if exc.problem == "unknown key":
        close = difflib.get_close_matches(exc.key, list(exc.allowed), n=1)
        return f"{exc.where}: unknown key {exc.key!r}" + (f" (did you mean {close[0]}?)" if close else "")
    if exc.problem == "missing":
        return f"{exc.where}: missing {', '.join(exc.missing)}"
    tp = exc.expected
    origin = typing.get_origin(tp) or tp
    what = ("a mapping" if dataclasses.is_dataclass(tp) or origin is dict else "a list" if origin in (list, tuple)
            else getattr(tp, "__name__", str(tp)))
    return f"{exc.where}: expected {what}, got {exc.value!r}"
