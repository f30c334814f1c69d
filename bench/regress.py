"""Compare a result store with a baseline, per (model, method, budget, metric), with tolerances.

A baseline (`reports/baseline.json`) holds, per cell (model, method, parameters, budget, seed), the
evaluation settings and the values of every declared metric (bench.metrics) that has a regress rule, from
its newest finished record: average and per-task accuracy (with lm-eval's stderr), perplexity per corpus,
prefill ms and decode tokens/s, and whatever else is declared. `compare` applies each metric's rule:

- accuracy (`AbsoluteDrop`): a drop of more than `acc_stderr` x the baseline's stderr AND more than
  `acc_points` points;
- perplexity (`RelativeChange`): a rise of more than `ppl_pct` %;
- latency (`RelativeChange`): more than `latency_pct` % slower (prefill ms up, or decode time per token up);
- a baseline cell the store lacks, or whose newest record failed, or that ran under other settings.

Pure functions over records; the CLI prints. Importing this module loads no torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.atomic import write_text
from bench.errors import BenchError
from bench.metrics import load_record, metric_for, metrics
from bench.record import CellRecord
from bench.report.provenance import newest_date
from bench.report.rows import budget_label, canonical, identity, settings
from bench.store import Store

SCHEMA = 1


class BaselineError(BenchError):
    """A baseline file that is missing or malformed, or a store with nothing to compare."""


@dataclass(frozen=True)
class Tolerances:
    acc_points: float = 1.0    # an accuracy drop must exceed this many points (of 100) ...
    acc_stderr: float = 2.0    # ... and this many of the baseline's stderrs
    ppl_pct: float = 3.0       # perplexity may rise this much (%)
    latency_pct: float = 15.0  # prefill and decode may get this much slower (%)

    def value(self, tolerance: float | str) -> float:
        """A rule's tolerance: a number, or the name of one of these fields."""
        return float(getattr(self, tolerance)) if isinstance(tolerance, str) else float(tolerance)


@dataclass(frozen=True)
class Finding:
    """One regression (or a cell that could not be compared)."""

    model: str
    method: str
    budget: str
    metric: str
    kind: str               # the metric's group (accuracy | perplexity | latency | ...) or missing | failed | settings
    baseline: float | None
    current: float | None
    change: str             # human-readable: "-3.2 points", "+4.1 %", ...
    allowed: str            # the tolerance it broke


@dataclass
class Comparison:
    findings: list[Finding] = field(default_factory=list)
    compared: int = 0       # metrics compared
    cells: int = 0          # baseline cells found in the store
    new_cells: int = 0      # store cells the baseline lacks (not compared)


# ------------------------------------------------------------------------------------------ metrics


def tracked(record: CellRecord | dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """value name -> {"value", "stderr"} for every value of every metric with a regress rule (absent
    measurements are left out)."""
    record = load_record(record)
    return {name: {"value": m.value, "stderr": m.stderr}
            for metric in metrics() if metric.regress is not None for name, m in metric.read(record).items()}


def _cell_fields(record: CellRecord) -> dict[str, Any]:
    cell = record.cell
    return {"model": cell.model, "method": cell.method, "params": cell.params or {}, "budget": cell.budget,
            "seed": cell.seed}


def _ident(entry: dict[str, Any]) -> tuple:
    return (str(entry.get("model")), str(entry.get("method")), canonical(entry.get("params") or {}),
            canonical(entry.get("budget")), entry.get("seed"))


# ----------------------------------------------------------------------------------------- baseline


def _records(store: str | os.PathLike) -> list[CellRecord]:
    """The store's records, typed, oldest first."""
    records = [load_record(r) for r in Store(store).records()]
    return sorted(records, key=lambda r: (str(r.finished_at or ""), str(r.key)))


def _newest(records: list[CellRecord]) -> dict[tuple, CellRecord]:
    """identity -> the newest record of that cell (records are oldest first)."""
    return {identity(r): r for r in records}


def build_baseline(store: str | os.PathLike) -> dict[str, Any]:
    """A baseline from the newest finished record of every cell in `store`."""
    records = [r for r in _records(store) if r.ok]
    if not records:
        raise BaselineError(f"the store {store} holds no finished records to make a baseline from",
                            f"run `bench run --store {store}` first")
    cells = []
    for record in _newest(records).values():
        cells.append({**_cell_fields(record), "key": record.key, "settings": settings(record),
                      "metrics": tracked(record)})
    cells.sort(key=lambda c: canonical([c["model"], c["method"], c["params"], c["budget"], c["seed"]]))
    commits = sorted({(r.provenance.get("git_commit") or {}).get("sha") or "" for r in records} - {""})
    return {"schema": SCHEMA, "date": newest_date(records), "git_commits": commits, "cells": cells}


def write_baseline(store: str | os.PathLike, path: str | os.PathLike) -> dict[str, Any]:
    baseline = build_baseline(store)
    write_text(path, json.dumps(baseline, indent=1, sort_keys=True) + "\n")
    return baseline


def load_baseline(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise BaselineError(f"no baseline at {path}",
                            "write one from a trusted store with `bench regress --update-baseline --baseline "
                            f"{path} --store DIR`")
    try:
        baseline = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise BaselineError(f"the baseline {path} is not valid JSON ({exc})", "rewrite it with --update-baseline") from exc
    if not isinstance(baseline, dict) or baseline.get("schema") != SCHEMA or not isinstance(baseline.get("cells"), list):
        raise BaselineError(f"the baseline {path} is not a schema-{SCHEMA} baseline", "rewrite it with --update-baseline")
    return baseline


# ---------------------------------------------------------------------------------------- comparing


def _finding(entry: dict[str, Any], metric: str, kind: str, base=None, cur=None, change="", allowed="") -> Finding:
    return Finding(str(entry["model"]), str(entry["method"]), budget_label(entry.get("budget")) if entry.get("budget")
                   else "-", metric, kind, base, cur, change, allowed)


def metric_kinds() -> list[str]:
    """The metric groups `bench regress` compares (what --skip can leave out)."""
    return list(dict.fromkeys(m.group for m in metrics() if m.regress is not None))


def check_metric(entry: dict[str, Any], name: str, base: dict, cur: dict, tol: Tolerances) -> Finding | None:
    """The finding for one value (its metric's regress rule), or None when it is within tolerance."""
    metric = metric_for(name)
    if metric is None or metric.regress is None:
        return None
    broken = metric.regress.check(base, cur, tol, metric.direction)
    if broken is None:
        return None
    return _finding(entry, name, metric.group, base["value"], cur["value"], *broken)


def compare(baseline: dict[str, Any], store: str | os.PathLike, tol: Tolerances = Tolerances(),
            allow_missing: bool = False, kinds: frozenset[str] | None = None) -> Comparison:
    """Every regression of `store` against `baseline` (see the module docstring for the rules); `kinds`:
    the metric groups to compare (default all)."""
    records = _records(store)
    if not records:
        raise BaselineError(f"the store {store} holds no records to compare", f"run `bench run --store {store}` first")
    kinds = frozenset(metric_kinds()) if kinds is None else kinds
    by_ident: dict[tuple, list[CellRecord]] = {}
    for r in records:
        by_ident.setdefault(identity(r), []).append(r)
    result = Comparison()
    seen = set()
    for entry in baseline["cells"]:
        ident = _ident(entry)
        seen.add(ident)
        candidates = by_ident.get(ident, [])
        ok = [r for r in candidates if r.ok]
        same = [r for r in ok if canonical(settings(r)) == canonical(entry.get("settings"))]
        if not candidates:
            if not allow_missing:
                result.findings.append(_finding(entry, "-", "missing", change="not in the store"))
            continue
        if not candidates[-1].ok:
            err = candidates[-1].error
            result.findings.append(_finding(entry, "-", "failed", change=f"{err.type if err else None}: "
                                            f"{str(err.message if err else None)[:80]}"))
            continue
        if not same:
            result.findings.append(_finding(entry, "-", "settings", change="evaluated under other settings",
                                            allowed="the baseline's settings"))
            continue
        result.cells += 1
        current = tracked(same[-1])
        for name, base in sorted(entry["metrics"].items()):
            metric = metric_for(name)
            if metric is None or metric.group not in kinds:
                continue
            if name not in current:
                result.findings.append(_finding(entry, name, "missing", base["value"], None, "not measured"))
                continue
            result.compared += 1
            finding = check_metric(entry, name, base, current[name], tol)
            if finding is not None:
                result.findings.append(finding)
    result.new_cells = len(set(by_ident) - seen)
    return result
