"""Metrics and their evaluators, declared once: the store, the report, `bench regress` and the progress
line iterate this registry, so none of them names a metric.

How to add a metric (one file, nothing else to edit): create `bench/metrics/<name>.py` with

    from dataclasses import dataclass
    from bench.metrics import Evaluator, Measure, Metric, Outcome, RelativeChange, evaluator, metric
    from bench.core.record import Part

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

import contextlib
import importlib
import pkgutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bench.core.record import CellRecord, number

BUILTIN = ("accuracy", "perplexity", "latency", "stability", "cost")
DIRECTIONS = ("higher", "lower")

_METRICS: dict[str, Metric] = {}
_EVALUATORS: dict[str, Evaluator] = {}
_loaded = False


# -------------------------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class Measure:
    """One value of a metric in one record, with its uncertainty where the record stores one."""

    value: float
    stderr: float | None = None
    low: float | None = None      # a 95 % interval, where the record stores one (speed-ups)
    high: float | None = None

    @classmethod
    def named(cls, name: str, value: Any) -> dict[str, Measure]:
        """{name: the value's measure} where `value` is a finite number, else {}: the `read` of a plain value."""
        value = number(value)
        return {} if value is None else {name: cls(value)}


@dataclass(frozen=True)
class Column:
    """One leaderboard column: its header, the (value, stderr) of a row of a group, and how to show it.

    style: "pct" (a fraction as a percentage, ± stderr), "ppl" (2 digits; scientific notation from 1000),
    "num" (`digits` and `suffix`, ± stderr), "interval" / "signed" (a fraction as a percentage with its 95 %
    interval: `value` returns (estimate, (low, high)); "signed" with a sign, for differences), "ratio" (a
    number with `digits`, `suffix` and its interval, (estimate, (low, high))), "p" (a p-value; the second
    element True when it is significant). `mark` (group, row) -> text appended to the cell (e.g. a
    below-chance mark). `dense` False shows a dash in the dense row (stability, which compares to it).
    """

    header: str
    value: Callable[[Any, Any], tuple[float | None, float | None]]  # (Group, Row) -> (value, stderr)
    style: str = "num"
    digits: int = 1
    suffix: str = ""
    dense: bool = True
    mark: Callable[[Any, Any], str] | None = None


@dataclass(frozen=True)
class AbsoluteDrop:
    """Regress rule for a score in [0, 1]: a regression is a drop of more than `points` points (of 100)
    AND more than `stderrs` of the baseline's stderrs. Tolerances are numbers or `Tolerances` field names."""

    points: float | str = "acc_points"
    stderrs: float | str = "acc_stderr"

    def check(self, base: dict[str, Any], cur: dict[str, Any], tol, direction: str) -> tuple[str, str] | None:
        points, stderrs = tol.value(self.points), tol.value(self.stderrs)
        sign = 1.0 if direction == "higher" else -1.0
        drop = sign * 100.0 * (base["value"] - cur["value"])
        se = base.get("stderr")
        if drop > points and (se is None or drop > stderrs * 100.0 * se):
            allowed = f"> {points:g} points" + (f" and > {stderrs:g} × {100 * se:.1f}" if se else "")
            return f"{-drop:+.1f} points", allowed
        return None


@dataclass(frozen=True)
class RelativeChange:
    """Regress rule: a regression is a change for the worse of more than `tolerance` % (relative to the
    baseline; for a higher-is-better value, of its inverse: time per token for tokens/s). `word` follows the
    percentage in the finding ("slower")."""

    tolerance: float | str
    word: str = ""

    def check(self, base: dict[str, Any], cur: dict[str, Any], tol, direction: str) -> tuple[str, str] | None:
        b, c = base["value"], cur["value"]
        pct = tol.value(self.tolerance)
        if direction == "lower":
            worse = 100.0 * (c / b - 1.0) if b else 0.0
        else:
            worse = 100.0 * (b / c - 1.0) if c else float("inf")
        if worse <= pct:
            return None
        if self.word:
            return f"{worse:+.1f} % {self.word}", f"> {pct:g} % {self.word}"
        return f"{worse:+.1f} %", f"> +{pct:g} %"


@dataclass(frozen=True)
class AbsoluteChange:
    """Regress rule for a deterministic value: a change of more than `tolerance` (absolute, in the value's
    unit) in either direction is reported, with its direction (an improvement nobody expected needs a new
    baseline too). `log` compares log values (perplexity: a change of its log is a change of NLL in nats)."""

    tolerance: float | str
    unit: str = ""
    log: bool = False
    scale: float = 1.0    # the tolerance's unit per value unit (accuracy: 100 points per 1.0)

    def check(self, base: dict[str, Any], cur: dict[str, Any], tol, direction: str) -> tuple[str, str, str] | None:
        import math

        b, c = base["value"], cur["value"]
        if self.log:
            if b <= 0 or c <= 0:
                return None
            b, c = math.log(b), math.log(c)
        limit = tol.value(self.tolerance)
        diff = self.scale * (c - b)
        if abs(diff) <= limit:
            return None
        better = (c > b) == (direction == "higher")
        return f"{diff:+.4g} {self.unit}".strip(), f"|Δ| ≤ {limit:g} {self.unit}".strip(), \
            "better" if better else "worse"


@dataclass(frozen=True)
class IntervalOverlap:
    """Regress rule for a value measured with noise and stored with a 95 % interval (a paired speed-up):
    a change is reported when the current interval and the baseline's are disjoint; where either has no
    interval, when the value moved by more than `fallback` % (a tolerance name or number)."""

    fallback: float | str = "latency_pct"

    def check(self, base: dict[str, Any], cur: dict[str, Any], tol, direction: str) -> tuple[str, str, str] | None:
        b, c = base["value"], cur["value"]
        lo_b, hi_b, lo_c, hi_c = base.get("low"), base.get("high"), cur.get("low"), cur.get("high")
        better = (c > b) == (direction == "higher")
        if None not in (lo_b, hi_b, lo_c, hi_c):
            if hi_c < lo_b or lo_c > hi_b:
                return (f"{c:.2f} [{lo_c:.2f}, {hi_c:.2f}] vs {b:.2f} [{lo_b:.2f}, {hi_b:.2f}]",
                        "overlapping 95 % intervals", "better" if better else "worse")
            return None
        pct = tol.value(self.fallback)
        change = 100.0 * (c / b - 1.0) if b else 0.0
        if abs(change) <= pct:
            return None
        return f"{change:+.1f} %", f"|Δ| ≤ {pct:g} %", "better" if better else "worse"


@dataclass(frozen=True)
class Metric:
    """One metric, declared once.

    name        the registry key; also the prefix of the value names `read` returns ("accuracy" reads
                "accuracy/avg", "accuracy/piqa", ...) or the single value's name
    read        the metric's values in a typed record: {value name: Measure} ({} where it was not measured)
    unit, direction ("higher" | "lower" is better), uncertainty (how the record stores it: "stderr",
                "runs", "none")
    regress     how `bench regress` compares a value with the baseline's (None: not compared)
    group       the kind `bench regress --skip` leaves out (default: name)
    columns     group -> the leaderboard's columns for this metric (default: one per value name)
    progress    record -> the progress line's words (default: "<value name> <value>" per value)
    summary     value name -> whether `bench run`'s closing terminal table shows it (default: every value;
                the pages show them all)
    scale, digits  how a value is shown (accuracy: x100, 1 digit)
    order       place among the metrics (columns, progress words); built-ins use 10..60
    """

    name: str
    title: str
    unit: str
    direction: str
    uncertainty: str
    read: Callable[[CellRecord], dict[str, Measure]]
    regress: AbsoluteDrop | RelativeChange | AbsoluteChange | IntervalOverlap | None = None
    group: str = ""
    columns: Callable[[Any], list[Column]] | None = None
    progress: Callable[[CellRecord], list[str]] | None = None
    summary: Callable[[str], bool] | None = None
    scale: float = 1.0
    digits: int = 2
    order: int = 45

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"metric {self.name}: direction must be one of {DIRECTIONS}")
        if not self.group:
            object.__setattr__(self, "group", self.name)

    @property
    def arrow(self) -> str:
        return "↑" if self.direction == "higher" else "↓"

    def owns(self, value_name: str) -> bool:
        return value_name == self.name or value_name.startswith(self.name + "/")

    def show(self, value: float | None) -> str:
        return "–" if value is None else f"{value * self.scale:.{self.digits}f}"

    def leaderboard_columns(self, group) -> list[Column]:
        if self.columns is not None:
            return self.columns(group)
        names: dict[str, None] = {}
        for row in group.all_rows:
            names.update(dict.fromkeys(self.read(row.record)))
        return [Column(f"{name} {self.arrow}", _default_value(self, name), digits=self.digits) for name in names]

    def in_summary(self, value_name: str) -> bool:
        return self.summary is None or self.summary(value_name)

    def progress_words(self, record: CellRecord) -> list[str]:
        if self.progress is not None:
            return self.progress(record)
        return [f"{name} {self.show(m.value)}" for name, m in self.read(record).items()]


def _default_value(m: Metric, name: str):
    def value(group, row) -> tuple[float | None, float | None]:
        measure = m.read(row.record).get(name)
        if measure is None:
            return None, None
        return measure.value * m.scale, None if measure.stderr is None else measure.stderr * m.scale

    return value


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


@dataclass
class Outcome:
    """What an evaluator returns: its record part, files to store beside the record, and the in-memory
    result other evaluators of the cell (and pruned cells, from the dense one) may read."""

    part: Any = None
    artifacts: dict[str, Any] = field(default_factory=dict)
    value: Any = None


@dataclass
class EvalContext:
    """What an evaluator sees of the cell being computed."""

    spec: Any                       # bench.run.config.RunSpec
    cell: Any                       # bench.run.cells.Cell
    model: Any                      # the model to evaluate (pruned, or the dense one)
    tokenizer: Any
    dense_model: Any                # the session's dense model (for paired measurements)
    observer: Any                   # bench.core.observer.Observer
    reference: dict[str, Outcome] | None = None  # the dense cell's outcomes (None for the dense cell)
    results: dict[str, Outcome] = field(default_factory=dict)  # this cell's outcomes so far
    timings: dict[str, float] = field(default_factory=dict)
    current: str = ""               # the running stage (a failure records it)
    reuse: Any = None               # bench.evaluate.engine.Reuse: the dense states the accuracy engine may use

    @contextlib.contextmanager
    def stage(self, name: str, timing: str | None = None) -> Iterator[None]:
        """A progress stage; its seconds add to `timings[timing]` when given."""
        self.current = name
        start = time.perf_counter()
        try:
            with self.observer.stage(name):
                yield
        finally:
            if timing is not None:
                self.timings[timing] = self.timings.get(timing, 0.0) + time.perf_counter() - start


class Evaluator:
    """Computes one part of a cell's record (built-ins declare it in bench.evaluate). Subclass, set `name` and
    `part`, implement `evaluate`, decorate with `@evaluator`. Evaluators run in `order` (built-ins 10..40)."""

    name: ClassVar[str]
    part: ClassVar[Any]             # a bench.core.record.Part subclass
    many: ClassVar[bool] = False    # the part is a list of `part` (one per corpus, ...)
    order: ClassVar[int] = 50

    def enabled(self, spec) -> bool:
        """Whether the run's spec asks for this evaluation (a disabled evaluator writes no part)."""
        return True

    def evaluate(self, ctx: EvalContext) -> Outcome:
        raise NotImplementedError

    def read_part(self, raw: Any) -> Any:
        if raw is None:
            return None
        if self.many:
            return [self.part.from_dict(r) for r in raw]
        return self.part.from_dict(raw)

    def reference(self, store, key: str, record: CellRecord) -> Outcome | None:
        """The dense cell's outcome read back from the store (for pruned cells of a later session)."""
        part = record.part(self.name)
        return None if part is None else Outcome(part)


def evaluator(cls: type[Evaluator]) -> type[Evaluator]:
    """Class decorator: register an evaluator under its `name` (which must be new)."""
    if cls.name in _EVALUATORS:
        raise ValueError(f"evaluator {cls.name!r} is registered twice")
    _EVALUATORS[cls.name] = cls()
    return cls


def load_record(raw: CellRecord | dict[str, Any]) -> CellRecord:
    """A typed record from a stored one (migrated, every registered evaluator's part typed); a typed record
    is returned as it is."""
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
