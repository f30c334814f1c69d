"""The one converter from plain data to dataclasses (bench.core.structured): nested dataclasses, mappings,
lists and tuples, unions with None, Literal choices, defaults and required fields, unknown keys refused or
kept, and the three ways of reading a scalar (lenient text, exact types, JSON kinds kept as stored)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from bench.core import structured
from bench.core.structured import Rules, StructureError, build

LENIENT = Rules()
EXACT = Rules(scalar=structured.exact)
RECORD = Rules(scalar=structured.json_shape, keep_unknown=True, read_items=False)


@dataclass(frozen=True)
class Window:
    size: int = 512
    ratio: float = 0.5
    bos: bool | None = None


@dataclass(frozen=True)
class Run:
    name: str
    seeds: tuple[int, ...] = (0,)
    window: Window = field(default_factory=Window)
    extra: Window | None = None
    by_task: dict[str, Window] = field(default_factory=dict)
    pairs: tuple[tuple[str, int], ...] = ()
    mode: Literal["fast", "slow"] = "fast"
    anything: Any = None


@dataclass
class Score:
    acc: float | None = None
    n: int | None = None
    ci: list[float] = field(default_factory=list)


@dataclass
class Part:
    tasks: dict[str, Score] = field(default_factory=dict)
    runs: list[Score] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


def _error(fn, *args) -> StructureError:
    with pytest.raises(StructureError) as info:
        fn(*args)
    return info.value


def test_nested_dataclasses_mappings_lists_and_defaults():
    run = build(Run, {"name": "a", "seeds": [1, 2], "window": {"size": 64},
                      "by_task": {"piqa": {"ratio": 0.25}}, "pairs": [["x", 1]], "anything": {"k": [1]}}, EXACT)
    assert run == Run("a", (1, 2), Window(64), None, {"piqa": Window(ratio=0.25)}, (("x", 1),), "fast", {"k": [1]})
    assert build(Run, {"name": "b"}, EXACT) == Run("b")  # every default taken
    assert build(Run, {"name": "c", "extra": {"bos": True}}, EXACT).extra == Window(bos=True)
    assert build(Run, {"name": "c", "extra": None}, EXACT).extra is None


def test_lenient_reads_text_as_numbers_booleans_and_lists():
    split = Rules(split_text=True, true_is_defaults=True)
    run = build(Run, {"name": 7, "seeds": "1, 2", "window": {"size": "64", "ratio": "1", "bos": "yes"}}, split)
    assert run.name == "7" and run.seeds == (1, 2) and run.window == Window(64, 1.0, True)
    assert build(Run, {"name": "a", "seeds": 3, "extra": True}, split).seeds == (3,)  # one value, a list of one
    assert build(Run, {"name": "a", "extra": True}, split).extra == Window()  # `section: true`: its defaults
    assert build(Run, {"name": "a", "seeds": "none"}, split).seeds == ()
    none_words = Rules(is_none=lambda v: v is None or v == "none")
    assert build(Window, {"bos": "none"}, none_words).bos is None
    assert _error(build, Window, {"size": "1.5"}, LENIENT).expected is int  # an int takes a whole number only
    assert _error(build, Window, {"bos": "maybe"}, LENIENT).where == "bos"


def test_exact_types_refuse_text_for_numbers():
    assert build(Window, {"ratio": 1}, EXACT).ratio == 1.0 and isinstance(build(Window, {"ratio": 1}, EXACT).ratio,
                                                                            float)
    exc = _error(build, Window, {"size": "3"}, EXACT, "f")
    assert (exc.problem, exc.where, exc.value, exc.expected) == ("type", "f.size", "3", int)
    assert (exc.owner, exc.field, exc.field_type) == (Window, "size", int)
    assert _error(build, Window, {"size": True}, EXACT).expected is int  # a boolean is no number
    exc = _error(build, Run, {"name": "a", "seeds": "1,2"}, EXACT, "f")  # text is no list here
    assert exc.where == "f.seeds" and exc.expected == tuple[int, ...]


def test_errors_name_the_place_the_key_and_the_allowed_keys():
    exc = _error(build, Run, {"name": "a", "window": {"sise": 3}}, EXACT, "run")
    assert (exc.problem, exc.where, exc.key) == ("unknown key", "run.window", "sise")
    assert exc.allowed == ("size", "ratio", "bos") and exc.owner is Run and exc.field == "window"
    assert str(exc) == "run.window: unknown key 'sise' (allowed: size, ratio, bos)"  # one line on its own
    exc = _error(build, Run, {"seeds": [1]}, EXACT, "run")
    assert (exc.problem, exc.missing) == ("missing", ("name",))
    exc = _error(build, Run, {"name": "a", "by_task": {"piqa": {"size": "x"}}}, EXACT)
    assert exc.where == "by_task.piqa.size" and exc.owner is Window  # the innermost field it belongs to
    exc = _error(build, Run, {"name": "a", "mode": "quick"}, LENIENT)
    assert (exc.problem, exc.value, exc.field) == ("choice", "quick", "mode")
    exc = _error(build, Run, {"name": "a", "window": 5}, EXACT)
    assert (exc.problem, exc.expected, exc.where) == ("type", Window, "window")
    assert _error(build, Run, ["name"], EXACT, "root").where == "root"
    exc = _error(build, Run, {"name": "a", "pairs": [["x", 1, 2]]}, EXACT)  # tuple[str, int]: one of each
    assert exc.where == "pairs" and exc.expected == tuple[str, int]


def test_a_list_longer_than_the_limit_is_refused_before_its_items_are_read():
    exc = _error(build, Run, {"name": "a", "seeds": ["x"] * 4}, Rules(max_items=3))
    assert (exc.problem, exc.where, len(exc.value)) == ("too many", "seeds", 4)
    assert build(Run, {"name": "a", "seeds": [1, 2, 3]}, Rules(max_items=3)).seeds == (1, 2, 3)


def test_records_keep_unknown_keys_and_values_as_stored():
    raw = {"tasks": {"piqa": {"acc": 1, "n": 5, "future": "x"}}, "runs": [{"acc": 0.5}], "meta": {"a": [1, None]},
           "new_key": {"b": 2}}
    part = build(Part, raw, RECORD)
    assert structured.unknown(part) == {"new_key": {"b": 2}}
    score = part.tasks["piqa"]
    assert isinstance(score, Score) and structured.unknown(score) == {"future": "x"}
    assert type(score.acc) is int  # kept as stored: writes back the same JSON
    assert part.runs == [Score(acc=0.5)] and part.meta == {"a": [1, None]}
    assert build(Score, {"ci": [None, "x"]}, RECORD).ci == [None, "x"]  # a plain list's items stay as written
    exc = _error(build, Score, {"acc": "high"}, RECORD)
    assert (exc.owner, exc.field, exc.field_type) == (Score, "acc", float | None)
    assert _error(build, Score, {"n": True}, RECORD).field == "n"  # a boolean is no number
    assert structured.unknown(build(Score, {}, RECORD)) == {}


def test_own_readers_and_reading_fields_without_building():
    def names(value, where):
        return tuple(str(v).upper() for v in value)

    rules = Rules(readers={(Run, "seeds"): names})
    assert build(Run, {"name": "a", "seeds": ["x", "y"]}, rules).seeds == ("X", "Y")
    assert structured.read_fields(Run, {"seeds": [1]}, LENIENT) == {"seeds": (1,)}  # `name` may come later
    with pytest.raises(StructureError):
        structured.read_fields(Run, {"seeds": ["x"]}, LENIENT)


def test_describe_and_keep():
    assert structured.describe(int) == "int" and structured.describe(float | None) == "float | None"
    assert structured.describe(dict[str, Any]) == "dict[str, Any]"
    window = structured.keep(Window(), {"later": 1})  # a frozen dataclass too
    assert structured.unknown(window) == {"later": 1}
