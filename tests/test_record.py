"""The typed cell record: every committed record reads into a CellRecord and writes back to the same JSON
(typed parts lose nothing, unknown keys survive), and an older schema is migrated on reading."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from bench.core import record
from bench.evaluate.multiple_choice import AccuracyResult
from bench.evaluate.windowed_perplexity import PerplexityResult
from bench.metrics import load_record

STORE = Path(__file__).resolve().parent.parent / "reports" / "store"


def test_committed_records_round_trip_through_the_typed_record():
    paths = sorted(STORE.glob("cells/*/record.json"))
    assert paths
    for path in paths:
        raw = json.loads(path.read_text())
        typed = load_record(raw)
        assert isinstance(typed.accuracy, AccuracyResult) and all(isinstance(p, PerplexityResult)
                                                                  for p in typed.perplexity)
        assert typed.to_dict() == raw, path


def test_unknown_keys_survive_and_old_schemas_migrate(monkeypatch):
    raw = {"key": "k", "schema": 1, "status": "ok", "cell": {"kind": "dense", "model": "m", "method": "dense"},
           "accuracy": {"average": 0.5, "tasks": {}, "from_the_future": 1}, "new_part": {"x": 1}}
    typed = load_record(raw)
    assert typed.accuracy.unknown == {"from_the_future": 1} and typed.extra == {"new_part": {"x": 1}}
    assert typed.to_dict()["accuracy"]["from_the_future"] == 1 and typed.to_dict()["new_part"] == {"x": 1}

    def rename(old):  # a schema-1 -> 2 migration: `accuracy.average` became `accuracy.mean`, say
        new = json.loads(json.dumps(old))
        new["accuracy"]["average"] = new["accuracy"].pop("average") * 100
        return new

    monkeypatch.setattr(record, "SCHEMA", 2)
    monkeypatch.setitem(record.MIGRATIONS, 1, rename)
    migrated = load_record(raw)
    assert migrated.schema == 2 and migrated.accuracy.average == 50.0
    assert raw["accuracy"]["average"] == 0.5  # the stored dict is not changed


def test_transient_fields_stay_out_of_the_record():
    """An evaluator's result is its record part: what only the caller needs is never written."""

    @dataclasses.dataclass
    class Toy(record.Part):
        transient = ("samples",)
        optional = ("note",)
        score: float | None = None
        note: str | None = None
        samples: list = dataclasses.field(default_factory=list)

    toy = Toy(score=0.5, samples=[{"doc_id": 0}])
    assert toy.to_dict() == {"score": 0.5}
    assert Toy.from_dict(toy.to_dict()) == Toy(score=0.5)


def test_prune_seconds_count_the_rounds_a_search_replayed():
    """A greedy search at 0.25 that replayed the 0.125 search's rounds costs, on its own, its seconds plus
    what those rounds took (the page's prune seconds are each cell's cost alone)."""
    from bench.core.record import PruningInfo

    alone = PruningInfo(seconds=10.0, capture_seconds=2.0)
    replayed = PruningInfo(seconds=10.0, capture_seconds=2.0, cost={"replayed_rounds": 5,
                                                                    "replayed_round_seconds": 30.5})
    assert alone.prune_s == 12.0
    assert replayed.prune_s == 42.5
