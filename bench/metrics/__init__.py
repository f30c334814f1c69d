"""Metrics and their evaluators, declared once: the store, the report, `bench regress` and the progress
line iterate this registry, so none of them names a metric.

How to add a metric (one file, nothing else to edit): create `bench/metrics/<name>.py` with

    from dataclasses import dataclass
    from bench.metrics import Evaluator, Measure, Metric, Outcome, RelativeChange, evaluator, metric
    from bench.record import Part

    @dataclass
    class BitsPerByte(Part):                       # the record part, typed (every field has a default)
        bpb: float | None = None

    @evaluator
    class BitsPerByteEvaluator(Evaluator):
        name = "bpb"                               # the part's key in record.json
        part = BitsPerByte
        def evaluate(self, ctx):                   # ctx: bench.metrics.EvalContext (model, cell, spec, ...)
            with ctx.stage("bits per byte"):       # a progress stage, a timing, the stage of a failure
                return Outcome(BitsPerByte(bpb=...))

    metric(Metric(name="bpb", title="Bits per byte", unit="bits/byte", direction="lower",
                  uncertainty="none", read=lambda r: {"bpb": Measure(r.part("bpb").bpb)} if r.part("bpb") else {},
                  regress=RelativeChange(tolerance=3.0)))

Modules in this package are imported on first use of the registry (built-ins first, in `BUILTIN` order;
others by name), so the file is the whole change. A `Metric` says how a value is read from a typed
`CellRecord`, its unit and direction, how its uncertainty is stored, how regress compares it, how the
leaderboard shows it (`columns`, default one column per value) and how the progress line shows it.
Importing this package imports no torch (evaluators import their heavy modules inside `evaluate`).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Any

from bench.metrics._types import (  # noqa: F401 - the declaration API, imported from here
    DIRECTIONS,
    AbsoluteDrop,
    Column,
    EvalContext,
    Evaluator,
    Measure,
    Metric,
    Outcome,
    RelativeChange,
)

if TYPE_CHECKING:  # pragma: no cover
    from bench.record import CellRecord

BUILTIN = ("accuracy", "perplexity", "latency", "stability", "cost")

_METRICS: dict[str, Metric] = {}
_EVALUATORS: dict[str, Evaluator] = {}
_loaded = False


# -------------------------------------------------------------------------------------------- metrics


def metric(m: Metric) -> Metric:
    """Register a metric (its name must be new)."""
    if m.name in _METRICS:
        raise ValueError(f"metric {m.name!r} is declared twice")
    _METRICS[m.name] = m
    return m


def metrics() -> list[Metric]:
    """Every declared metric, in display order."""
    _load()
    return sorted(_METRICS.values(), key=lambda m: m.order)


def metric_for(value_name: str) -> Metric | None:
    """The metric a value name ("accuracy/piqa", "latency/prefill_ms") belongs to (the longest name)."""
    owners = [m for m in metrics() if m.owns(value_name)]
    return max(owners, key=lambda m: len(m.name)) if owners else None


def values(record: CellRecord) -> dict[str, tuple[Metric, Measure]]:
    """Every metric value of a record: value name -> (its metric, the measure)."""
    out: dict[str, tuple[Metric, Measure]] = {}
    for m in metrics():
        for name, measure in m.read(record).items():
            out[name] = (m, measure)
    return out


# ----------------------------------------------------------------------------------------- evaluators


def evaluator(cls: type[Evaluator]) -> type[Evaluator]:
    """Class decorator: register an evaluator under its `name` (which must be new)."""
    if cls.name in _EVALUATORS:
        raise ValueError(f"evaluator {cls.name!r} is registered twice")
    _EVALUATORS[cls.name] = cls()
    return cls


def load_record(raw: CellRecord | dict[str, Any]) -> CellRecord:
    """A typed record from a stored one (migrated, every registered evaluator's part typed); a typed record
    is returned as it is."""
    from bench.record import CellRecord

    if isinstance(raw, CellRecord):
        return raw
    return CellRecord.from_dict(raw, {ev.name: ev.read_part for ev in evaluators()})


def evaluators() -> list[Evaluator]:
    """Every registered evaluator, in run order."""
    _load()
    return sorted(_EVALUATORS.values(), key=lambda e: e.order)


def unregister(name: str) -> None:
    """Remove a metric and an evaluator of that name (tests that declare toys clean up with it)."""
    _METRICS.pop(name, None)
    _EVALUATORS.pop(name, None)


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    found = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    for name in [*BUILTIN, *(n for n in found if n not in BUILTIN)]:
        importlib.import_module(f"{__name__}.{name}")
