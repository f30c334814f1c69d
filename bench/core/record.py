"""The cell record, typed: what one cell of a run produced, as the store writes and reads it.

A `CellRecord` holds the cell's identity (`CellInfo`), its status (and `CellError` when it failed), the dense
model (`ModelInfo`), what pruning did (`PruningInfo`), one typed part per evaluator (`parts`: `accuracy`,
`perplexity`, `latency`, `stability`, and whatever `bench.metrics` registers), timings and provenance.
On disk it is the JSON the store documents (bench/results/store.py): each part under its evaluator's name at the
top level, so `record.json` reads as before.

Reading: `bench.metrics.load_record(raw)` (which calls `CellRecord.from_dict(raw, parts)`) first brings an
older schema up to `SCHEMA` through `MIGRATIONS` (`{old schema: function(raw) -> raw of old + 1}`), then
types every part with the class its evaluator declares; keys a class does not know are kept and written back unchanged (`Part.unknown`), so a record of a
newer harness round-trips. Writing: `to_dict()`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from bench.core import structured

SCHEMA = 1

# schema N -> the function that turns a schema-N record (plain JSON) into a schema-N+1 one
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}

P = TypeVar("P", bound="Part")


class RecordError(ValueError):
    """A stored record that cannot be typed: a value of the wrong type, an unknown schema (a hand-edited or
    damaged file). The store ignores such a record (`bench run` computes the cell again)."""


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, dict | list) else type(value).__name__
    return text if len(text) <= 40 else text[:39] + "…"


def number(x: Any) -> float | None:
    """A finite float, or None (NaN, inf, None, strings and booleans are not numbers here)."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) else None


def _plain(value: Any) -> Any:
    if isinstance(value, Part):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# records: each field's JSON kind checked and its value kept as stored; the contents of plain lists and
# mappings left as they are; nested parts typed by their annotations; unknown keys kept
_RULES = structured.Rules(scalar=structured.json_shape, keep_unknown=True, read_items=False)


class Part:
    """A typed piece of a record (a dataclass): JSON in and out, read by the harness's one converter
    (bench.core.structured) from the field annotations (a field annotated `dict[str, OtherPart]` or
    `list[OtherPart]` holds parts); keys the class does not declare are kept in `unknown` and written back,
    so records of other harness versions round-trip.

    `optional` fields are left out of the JSON while None; `transient` fields are never written: what the
    evaluation that returns the part also hands its caller (per-sample records, artifacts' contents).
    Every field has a default, so a record written before a field existed still loads.
    """

    optional: ClassVar[tuple[str, ...]] = ()  # fields left out of the JSON while None (e.g. pruned-only ones)
    transient: ClassVar[tuple[str, ...]] = ()  # fields kept in memory only, never in the record

    def to_dict(self) -> dict[str, Any]:
        skip = {*self.transient, *(name for name in self.optional if getattr(self, name) is None)}
        out = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name not in skip}
        out.update(self.unknown)
        return out

    @property
    def unknown(self) -> dict[str, Any]:
        return structured.unknown(self)

    @classmethod
    def from_dict(cls: type[P], data: dict[str, Any] | None) -> P | None:
        """The part of a stored mapping; a value whose type does not fit its field is a RecordError."""
        return None if data is None else _read(cls, data, cls.__name__)


def _read(cls: type, data: Any, root: str, whole: bool = True) -> Any:
    """`cls` built from `data` (or, not `whole`, its typed fields), a mismatch worded as a RecordError."""
    try:
        return structured.build(cls, data, _RULES, root) if whole else structured.read_fields(cls, data, _RULES)
    except structured.StructureError as exc:
        if exc.problem == "missing":
            raise RecordError(f"{root} lacks {', '.join(exc.missing)}") from None
        if exc.owner is None:
            raise RecordError(f"{root} must be a JSON object, not {_short(data)}") from None
        name = f"{root}'s {exc.field}" if exc.owner is cls and not whole else f"{exc.owner.__name__}.{exc.field}"
        raise RecordError(f"{name} must be {structured.describe(exc.field_type)}, not {_short(exc.value)}") from None


@dataclass
class CellInfo(Part):
    """What the cell is: kind "dense" | "pruned", model, method, resolved params, budget, seed, label."""

    kind: str = "pruned"
    model: str | None = None
    method: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, Any] | None = None
    seed: int | None = None
    label: str | None = None


@dataclass
class CellError(Part):
    """Why a cell failed: exception type and message, the stage it failed in, whether it is a user error."""

    type: str | None = None
    message: str | None = None
    stage: str | None = None
    user_error: bool = False
    traceback: str | None = None


@dataclass
class ModelInfo(Part):
    """The dense model: its name, where its weights come from, its layers and parameters."""

    name: str | None = None
    source: dict[str, Any] | None = None
    n_layers: int | None = None
    params_total: int | None = None


@dataclass
class PruningInfo(Part):
    """What pruning did (from the plan and the pipeline's measurements)."""

    optional = ("first_changed_layer", "shared_layers",  # set by the evaluation engine only
                "model_identity", "evaluation_from")        # set where a pruned model is fully given by its plan

    method: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, Any] | None = None
    n_layers: int | None = None
    layers_after: int | None = None
    layers_removed: int | None = None
    removed_layers: list[int] | None = None
    ops: list[dict[str, Any]] = field(default_factory=list)
    params_total: int | None = None
    params_removed: int | None = None
    params_after: int | None = None
    param_ratio: float | None = None
    plan_hash: str | None = None
    seconds: float | None = None
    plan_seconds: float | None = None
    capture_seconds: float | None = None
    training: dict[str, Any] | None = None
    cost: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    calibration: dict[str, Any] | None = None
    training_data: dict[str, Any] | None = None
    first_changed_layer: int | None = None  # the plan's first removed/merged/replaced dense layer
    shared_layers: int | None = None  # leading layers bit-identical to the dense model's (the engine reuses)
    model_identity: str | None = None  # hash of what the pruned model is (bench.run.cells.pruned_model_identity)
    evaluation_from: str | None = None  # the key of the cell whose identical model's evaluation this one shares

    @classmethod
    def from_plan(cls, plan, layers_after: int, seconds: float, training: dict[str, Any] | None,
                  training_data: dict[str, Any] | None) -> PruningInfo:
        return cls(method=plan.method, params=plan.params, budget=plan.budget, n_layers=plan.n_layers,
                   layers_after=layers_after, layers_removed=plan.layers_removed,
                   removed_layers=plan.removed_original, ops=plan.ops, params_total=plan.params_total,
                   params_removed=plan.params_removed, params_after=plan.params_total - plan.params_removed,
                   param_ratio=plan.param_ratio, plan_hash=plan.structure_hash(), seconds=seconds,
                   plan_seconds=plan.cost.get("plan_seconds"), capture_seconds=plan.cost.get("capture_seconds"),
                   training=training, cost=plan.cost, scores=plan.scores, notes=plan.notes,
                   calibration=plan.calib, training_data=training_data)

    @property
    def train_s(self) -> float | None:
        """Healing or replacement training wall seconds (bench.train's cost: `wall_seconds`)."""
        training = self.training or {}
        return number(training.get("wall_seconds", training.get("seconds")))

    @property
    def prune_s(self) -> float | None:
        """Calibration capture + plan + surgery (the pipeline's seconds without training), on its own: a greedy
        search that replayed the rounds a smaller budget searched (methods.memo.search_memo) counts what those
        rounds took when computed."""
        pipeline = number(self.seconds)
        if pipeline is None:
            return None
        replayed = number(self.cost.get("replayed_round_seconds")) or 0.0
        return (number(self.capture_seconds) or 0.0) + pipeline + replayed - (self.train_s or 0.0)


_TOP = ("key", "schema", "status", "error", "started_at", "finished_at", "files", "cell", "model", "pruning",
        "timings", "provenance")


@dataclass
class CellRecord:
    """One cell's record. `parts` maps an evaluator's name to its typed part (None: ran, nothing to say)."""

    key: str
    cell: CellInfo
    status: str = "ok"  # ok | failed | missing
    error: CellError | None = None
    schema: int = SCHEMA
    started_at: str | None = None
    finished_at: str | None = None
    files: list[str] = field(default_factory=list)
    model: ModelInfo | None = None
    pruning: PruningInfo | None = None
    parts: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # top-level keys no evaluator of this harness declares

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def dense(self) -> bool:
        return self.cell.kind == "dense" or self.cell.method == "dense"

    def part(self, name: str) -> Any:
        """The typed part of evaluator `name`, or None where it did not run (or wrote nothing)."""
        return self.parts.get(name)

    # the built-in parts, typed
    @property
    def accuracy(self):
        return self.part("accuracy")

    @property
    def perplexity(self) -> list:
        return self.part("perplexity") or []

    @property
    def latency(self):
        return self.part("latency")

    @property
    def stability(self):
        return self.part("stability")

    # ------------------------------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key, "schema": self.schema, "status": self.status,
            "error": self.error.to_dict() if self.error else None, "started_at": self.started_at,
            "cell": self.cell.to_dict(), "model": self.model.to_dict() if self.model else None,
        }
        if self.pruning is not None:
            out["pruning"] = self.pruning.to_dict()
        for name, part in self.parts.items():
            out[name] = _plain(part)
        out.update(timings=dict(self.timings), provenance=_plain(self.provenance), finished_at=self.finished_at,
                   files=list(self.files))
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any], parts: dict[str, Callable[[Any], Any]] | None = None) -> CellRecord:
        """The typed record of a stored one (migrated first); `parts` maps a part's name to the function that
        types it (bench.metrics.load_record passes every registered evaluator's); other top-level keys stay
        as they are in `extra`."""
        if not isinstance(raw, dict):
            raise RecordError(f"a record must be a JSON object, not {_short(raw)}")
        raw = migrate(raw)
        top = _read(cls, {k: raw[k] for k in _TOP if raw.get(k) is not None}, "the record", whole=False)
        typed = {}
        for name, read in (parts or {}).items():
            if name in raw:
                try:
                    typed[name] = read(raw[name])
                except (TypeError, AttributeError) as exc:  # a part's shape its reader did not expect
                    raise RecordError(f"the record's {name} cannot be read: {exc}") from None
        known = set(_TOP) | set(typed)
        return cls(**{**top, "key": str(raw.get("key")), "status": str(raw.get("status")),
                      "cell": top.get("cell") or CellInfo(), "files": list(top.get("files", [])),
                      "timings": dict(top.get("timings", {})), "provenance": dict(top.get("provenance", {})),
                      "parts": typed, "extra": {k: v for k, v in raw.items() if k not in known}})


def failure(key: str, cell: dict[str, Any], type: str, message: str, stage: str, *, user_error: bool = False,
            status: str = "failed", provenance: dict[str, Any] | None = None, **error) -> dict[str, Any]:
    """A record (as stored) for a cell that produced nothing: a job that died, a record that never came."""
    import datetime as dt

    now = dt.datetime.now(dt.UTC).isoformat()
    err = CellError(type=type, message=message, stage=stage, user_error=user_error)
    if error:
        structured.keep(err, error)
    return CellRecord(key=key, cell=CellInfo.from_dict(cell), status=status, error=err, started_at=now,
                      finished_at=now, provenance=provenance or {}).to_dict()


def migrate(raw: dict[str, Any]) -> dict[str, Any]:
    """A raw record brought up to `SCHEMA` (a record without a schema is schema 1)."""
    version = raw.get("schema") or 1
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= SCHEMA:
        raise RecordError(f"the record's schema {_short(version)} is not one this harness reads (1 .. {SCHEMA})")
    while version < SCHEMA:
        raw = {**MIGRATIONS[version](raw), "schema": version + 1}
        version += 1
    return raw
