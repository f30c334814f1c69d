"""What a `bench run` would do and about how long it would take here: `bench run --dry-run`.

Every cell of the matrix is one of:
- **stored**: finished in the store (skipped; `--force` computes it again);
- **shares**: its pruned model will equal another cell's (a method whose plan depends neither on a seed nor
  on calibration text, at a seed after the first; or a stored cell's plan already says so), so it will
  reuse that cell's evaluation (`bench.run.session`) and costs only its plan;
- **run**: to be computed. Cells of methods whose plan depends on calibration may still turn out to share
  (their plan is known only once computed); the estimate counts them in full.

The time estimate comes from the store's own measurements on this machine, when it holds finished cells
of the same model: per task, seconds per evaluated document (dense and pruned cells apart: a pruned cell
starts from the dense model's stored layer states); the other stages (perplexity, fidelity, latency) in
seconds per cell; pruning in seconds per method. Without such cells, from `REFERENCE` (derived from the
project's recorded measurements, stated where it is defined), scaled by the model's parameter count, and
marked as such.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass, field
from typing import Any

from bench.run.cells import Cell, expand, needs_calibration
from bench.run.config import RunSpec

# For a model without finished cells in the store: rates derived from this project's own recorded
# measurements, scaled by the model's parameter count over SmolLM2-135M's, and marked [reference] in the plan:
# - accuracy: 0.054 s per document for pruned SmolLM2-135M cells on full PIQA + ARC-Easy (4,214 documents in
#   221-235 s, the prefix engine, 2 cores with bf16 units; reports/streamline-study.md's session), doubled for
#   a CPU without bf16 units (about 2x slower) and for the dense cell (no stored layer states to start from,
#   and the context scores stability needs). Tasks with long contexts (BoolQ's passages, HellaSwag's endings)
#   cost more per document than PIQA and ARC-Easy, so the reference underestimates them;
# - the other stages: 30 s per 64 KiB of fidelity text (bf16, the quick preset's measurement), for the
#   standard preset's 64 documents (146 KB) and 64 perplexity windows of 512 tokens on two corpora, doubled
#   for fp32, plus about a minute of latency probes: 300 s a cell;
# - pruning: 60 s (a one-pass criterion on 64 x 128 calibration tokens); greedy searches (SLEB, BlockPruner,
#   FinerCut, LaCo) take far longer, which only the store's own measurements show.
# After the first finished cells of a model, the store's measurements replace all of these (pruned cells
# before any is measured: the dense cell's, scaled, see PRUNED_OVER_DENSE).
REFERENCE_PARAMS = 134_515_008
REFERENCE = {
    "dense": {"accuracy_per_doc": {}, "accuracy_default": 0.22, "other_s": 300.0},
    "pruned": {"accuracy_per_doc": {}, "accuracy_default": 0.11, "other_s": 300.0, "prune_s": 60.0},
}


@dataclass
class Rates:
    """Measured stage costs of one model: per kind (dense | pruned), seconds per document per task and
    seconds per cell for the rest; pruning seconds per method."""

    per_doc: dict[str, dict[str, float]] = field(default_factory=dict)   # kind -> task -> s/doc
    scoring_per_doc: dict[str, float] = field(default_factory=dict)      # dense: task -> s/doc, no context pass
    other_s: dict[str, float] = field(default_factory=dict)              # kind -> s/cell besides accuracy
    prune_s: dict[str, float] = field(default_factory=dict)              # method -> s/cell
    cells: dict[str, int] = field(default_factory=dict)                  # kind -> finished cells measured
    basis: str = "store"


def measured_rates(records: list[dict[str, Any]], model: str) -> Rates:
    """Rates from the finished, evaluated (not shared) cells of `model` in a store's records."""
    per_doc: dict[str, dict[str, list[float]]] = {"dense": {}, "pruned": {}}
    scoring: dict[str, list[float]] = {}
    other: dict[str, list[float]] = {"dense": [], "pruned": []}
    prune: dict[str, list[float]] = {}
    for r in records:
        cell = r.get("cell") or {}
        if r.get("status") != "ok" or cell.get("model") != model:
            continue
        if (r.get("pruning") or {}).get("evaluation_from"):
            continue   # its evaluation was copied: no measurement
        kind = "dense" if cell.get("kind") == "dense" else "pruned"
        timings = r.get("timings") or {}
        tasks = ((r.get("accuracy") or {}).get("tasks") or {})
        accuracy_s = 0.0
        for task, score in tasks.items():
            seconds, n = timings.get(f"accuracy_{task}_s"), (score or {}).get("n")
            if seconds and n:
                per_doc[kind].setdefault(task, []).append(seconds / n)
                accuracy_s += seconds
                if kind == "dense" and timings.get(f"scoring_{task}_s"):
                    scoring.setdefault(task, []).append(timings[f"scoring_{task}_s"] / n)
        prune_s = timings.get("prune_s", 0.0) + timings.get("calibration_s", 0.0)
        total = timings.get("total_s")
        if total:
            other[kind].append(max(0.0, total - accuracy_s - prune_s - timings.get("load_s", 0.0)))
        if kind == "pruned" and "prune_s" in timings:
            prune.setdefault(str(cell.get("method")), []).append(prune_s)
    return Rates(per_doc={k: {t: statistics.median(v) for t, v in d.items()} for k, d in per_doc.items()},
                 scoring_per_doc={t: statistics.median(v) for t, v in scoring.items()},
                 other_s={k: statistics.median(v) for k, v in other.items() if v},
                 prune_s={m: statistics.median(v) for m, v in prune.items()},
                 cells={k: len(v) for k, v in other.items()})


@dataclass
class PlannedCell:
    cell: Cell
    state: str                  # stored | shares | run
    seconds: float = 0.0        # estimated; 0 for stored cells
    basis: str = ""             # where the estimate comes from
    twin: str | None = None     # the cell whose evaluation a sharing cell reuses (its label)


@dataclass
class RunPlan:
    cells: list[PlannedCell]

    def count(self, state: str) -> int:
        return sum(1 for c in self.cells if c.state == state)

    @property
    def seconds(self) -> float:
        return sum(c.seconds for c in self.cells)

    def lines(self) -> list[str]:
        out = []
        for c in self.cells:
            extra = f" (reuses {c.twin})" if c.twin else ""
            time_text = f"~{_duration(c.seconds)}" if c.state != "stored" else "stored"
            out.append(f"{c.state:<6}  {c.cell.label}{extra}  {time_text}" + (f"  [{c.basis}]" if c.basis else ""))
        return out

    def summary(self) -> str:
        return (f"{len(self.cells)} cells: {self.count('stored')} stored, {self.count('run')} to compute, "
                f"{self.count('shares')} reusing another cell's evaluation; estimated {_duration(self.seconds)} "
                "on this machine")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _documents(spec: RunSpec) -> dict[str, int]:
    from bench.data import tasks

    if not spec.eval.tasks:
        return {}
    out = {}
    for info in tasks.resolve(list(spec.eval.tasks)):
        n = info.documents or 0
        limit = spec.eval.limit
        if isinstance(limit, float) and limit < 1:
            out[info.name] = int(-(-limit * n // 1))
        else:
            out[info.name] = min(n, int(limit)) if limit is not None else n
    return out


def _seed_free(method: str, params: dict[str, Any]) -> bool:
    """Whether the method's plan depends on neither a seed nor calibration text (`last`): its cells at
    every seed prune the same model."""
    import methods

    fields = {f.name for f in dataclasses.fields(methods.get_class(method).Params)}
    return not needs_calibration(method) and "seed" not in fields and not methods.create(method, params).trains


def plan(spec: RunSpec) -> RunPlan:
    """The run's cells, what each would do, and an estimate of its time (reads the store, writes nothing)."""
    from bench.models import zoo
    from bench.results.store import Store

    records = Store(spec.store).records()  # readable, intact records only (a damaged cell is computed again)
    by_key = {r.get("key"): r for r in records}
    docs = _documents(spec)
    rates = {m.name: measured_rates(records, m.name) for m in spec.models}
    seen_plans: dict[tuple, str] = {}
    out = []
    for cell in expand(spec):
        stored = by_key.get(cell.key)
        twin_key = None
        if not cell.dense and _seed_free(cell.method, dict(cell.params)):
            params = tuple(p for p in cell.params if p[0] not in ("seed", "train_seed"))
            twin_key = (cell.model, cell.method, params, cell.ratio, cell.layers)
        if stored is not None and stored.get("status") == "ok" and not spec.force:
            out.append(PlannedCell(cell, "stored"))
            if twin_key is not None:
                seen_plans.setdefault(twin_key, cell.label)
            continue
        kind = "dense" if cell.dense else "pruned"
        if twin_key is not None:
            if twin_key in seen_plans:
                seconds, basis = _prune_seconds(rates[cell.model], cell, zoo)
                out.append(PlannedCell(cell, "shares", seconds, basis, seen_plans[twin_key]))
                continue
            seen_plans[twin_key] = cell.label
        seconds, basis = _cell_seconds(rates[cell.model], kind, cell, docs, zoo)
        out.append(PlannedCell(cell, "run", seconds, basis))
    return RunPlan(out)


def _scale(model: str, zoo) -> float:
    params = zoo.resolve(model).parameters
    return (params / REFERENCE_PARAMS) if params else 1.0


def _prune_seconds(rates: Rates, cell: Cell, zoo) -> tuple[float, str]:
    if cell.method in rates.prune_s:
        return rates.prune_s[cell.method], "measured"
    return REFERENCE["pruned"]["prune_s"] * _scale(cell.model, zoo), "reference"


# A pruned cell before any pruned cell of its model is measured: the dense cell's lm-eval scoring seconds
# (`scoring_<task>_s`: without the context pass that only the dense cell runs) times the share of parameters
# the ratio keeps; for a dense cell recorded without them, its accuracy stages times the reference's
# pruned-to-dense ratio; marked "from dense" in the plan. A pruned cell that starts from stored layer states
# (bench.evaluate.engine) takes less than either: the estimate is then an upper bound.
PRUNED_OVER_DENSE = REFERENCE["pruned"]["accuracy_default"] / REFERENCE["dense"]["accuracy_default"]


def _cell_seconds(rates: Rates, kind: str, cell: Cell, docs: dict[str, int], zoo) -> tuple[float, str]:
    measured = rates.per_doc.get(kind) or {}
    dense = rates.per_doc.get("dense") or {}
    ref = REFERENCE[kind]
    scale = _scale(cell.model, zoo)
    seconds, bases = 0.0, set()
    for task, n in docs.items():
        if task in measured:
            seconds += measured[task] * n
            bases.add("measured")
        elif kind == "pruned" and task in rates.scoring_per_doc and cell.ratio is not None:
            # the dense model's scoring without its context pass, over the layers the ratio keeps
            seconds += rates.scoring_per_doc[task] * (1.0 - cell.ratio) * n
            bases.add("from dense")
        elif kind == "pruned" and task in dense:
            seconds += dense[task] * PRUNED_OVER_DENSE * n
            bases.add("from dense")
        else:
            seconds += ref["accuracy_per_doc"].get(task, ref["accuracy_default"]) * scale * n
            bases.add("reference")
    if kind in rates.other_s:
        seconds += rates.other_s[kind]
        bases.add("measured")
    elif kind == "pruned" and "dense" in rates.other_s:
        seconds += rates.other_s["dense"]
        bases.add("from dense")
    else:
        seconds += ref["other_s"] * scale
        bases.add("reference")
    if kind == "pruned":
        prune, basis = _prune_seconds(rates, cell, zoo)
        seconds += prune
        bases.add(basis)
    return seconds, "+".join(sorted(bases))
