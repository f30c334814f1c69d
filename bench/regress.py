"""Compare a result store with a baseline, per (model, method, budget, metric), with tolerances.

A baseline (`reports/baseline.json`) holds, per cell (model, method, parameters, budget, seed), the
evaluation settings and the metrics of its newest finished record: average and per-task accuracy (with
lm-eval's stderr), perplexity per corpus, prefill ms and decode tokens/s. `compare` finds:

- accuracy: a drop of more than `acc_stderr` x the baseline's stderr AND more than `acc_points` points;
- perplexity: a rise of more than `ppl_pct` %;
- latency: more than `latency_pct` % slower (prefill ms up, or decode time per token up);
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
from bench.report.provenance import newest_date
from bench.report.rows import Row, budget_label, canonical, dig, identity, settings
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


@dataclass(frozen=True)
class Finding:
    """One regression (or a cell that could not be compared)."""

    model: str
    method: str
    budget: str
    metric: str
    kind: str               # accuracy | perplexity | latency | missing | failed | settings
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


def metrics(record: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """name -> {"value", "stderr"} for every metric a baseline tracks (absent measurements are left out)."""
    row = Row(record)
    out: dict[str, dict[str, float | None]] = {}
    if row.accuracy is not None:
        out["accuracy/avg"] = {"value": row.accuracy, "stderr": row.accuracy_stderr}
    for task in row.tasks:
        value, stderr = row.task_score(task)
        if value is not None:
            out[f"accuracy/{task}"] = {"value": value, "stderr": stderr}
    for corpus, p in row.perplexity.items():
        if isinstance(p.get("perplexity"), int | float):
            out[f"perplexity/{corpus}"] = {"value": float(p["perplexity"]), "stderr": None}
    if row.prefill_ms is not None:
        out["latency/prefill_ms"] = {"value": row.prefill_ms, "stderr": None}
    if row.decode_tok_s is not None:
        out["latency/decode_tokens_per_s"] = {"value": row.decode_tok_s, "stderr": None}
    return out


def _cell_fields(record: dict[str, Any]) -> dict[str, Any]:
    cell = record.get("cell") or {}
    return {"model": cell.get("model"), "method": cell.get("method"), "params": cell.get("params") or {},
            "budget": cell.get("budget"), "seed": cell.get("seed")}


def _ident(entry: dict[str, Any]) -> tuple:
    return identity({"cell": entry})


# ----------------------------------------------------------------------------------------- baseline


def _newest(records: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    """identity -> the newest record of that cell (records are oldest first)."""
    out: dict[tuple, dict[str, Any]] = {}
    for r in sorted(records, key=lambda r: (str(r.get("finished_at") or ""), str(r.get("key")))):
        out[identity(r)] = r
    return out


def build_baseline(store: str | os.PathLike) -> dict[str, Any]:
    """A baseline from the newest finished record of every cell in `store`."""
    records = [r for r in Store(store).records() if r.get("status") == "ok"]
    if not records:
        raise BaselineError(f"the store {store} holds no finished records to make a baseline from",
                            f"run `bench run --store {store}` first")
    cells = []
    for record in _newest(records).values():
        cells.append({**_cell_fields(record), "key": record["key"], "settings": settings(record),
                      "metrics": metrics(record)})
    cells.sort(key=lambda c: canonical([c["model"], c["method"], c["params"], c["budget"], c["seed"]]))
    commits = sorted({dig(r, "provenance", "git_commit", "sha") or "" for r in records} - {""})
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


def check_metric(entry: dict[str, Any], name: str, base: dict, cur: dict, tol: Tolerances) -> Finding | None:
    """The finding for one metric, or None when it is within tolerance."""
    b, c = base["value"], cur["value"]
    if name.startswith("accuracy/"):
        drop = 100.0 * (b - c)
        se = base.get("stderr")
        if drop > tol.acc_points and (se is None or drop > tol.acc_stderr * 100.0 * se):
            allowed = f"> {tol.acc_points:g} points" + (f" and > {tol.acc_stderr:g} × {100 * se:.1f}" if se else "")
            return _finding(entry, name, "accuracy", b, c, f"{-drop:+.1f} points", allowed)
        return None
    if name.startswith("perplexity/"):
        rise = 100.0 * (c / b - 1.0) if b else 0.0
        if rise > tol.ppl_pct:
            return _finding(entry, name, "perplexity", b, c, f"{rise:+.1f} %", f"> +{tol.ppl_pct:g} %")
        return None
    if name == "latency/prefill_ms":
        slower = 100.0 * (c / b - 1.0) if b else 0.0
    elif name == "latency/decode_tokens_per_s":
        slower = 100.0 * (b / c - 1.0) if c else float("inf")  # time per token, relative
    else:
        return None
    if slower > tol.latency_pct:
        return _finding(entry, name, "latency", b, c, f"{slower:+.1f} % slower", f"> {tol.latency_pct:g} % slower")
    return None


def compare(baseline: dict[str, Any], store: str | os.PathLike, tol: Tolerances = Tolerances(),
            allow_missing: bool = False, kinds: frozenset[str] = frozenset({"accuracy", "perplexity", "latency"})
            ) -> Comparison:
    """Every regression of `store` against `baseline` (see the module docstring for the rules)."""
    records = Store(store).records()
    if not records:
        raise BaselineError(f"the store {store} holds no records to compare", f"run `bench run --store {store}` first")
    by_ident: dict[tuple, list[dict[str, Any]]] = {}
    for r in sorted(records, key=lambda r: (str(r.get("finished_at") or ""), str(r.get("key")))):
        by_ident.setdefault(identity(r), []).append(r)
    result = Comparison()
    seen = set()
    for entry in baseline["cells"]:
        ident = _ident(entry)
        seen.add(ident)
        candidates = by_ident.get(ident, [])
        ok = [r for r in candidates if r.get("status") == "ok"]
        same = [r for r in ok if canonical(settings(r)) == canonical(entry.get("settings"))]
        if not candidates:
            if not allow_missing:
                result.findings.append(_finding(entry, "-", "missing", change="not in the store"))
            continue
        if candidates[-1].get("status") != "ok":
            err = candidates[-1].get("error") or {}
            result.findings.append(_finding(entry, "-", "failed",
                                            change=f"{err.get('type')}: {str(err.get('message'))[:80]}"))
            continue
        if not same:
            result.findings.append(_finding(entry, "-", "settings", change="evaluated under other settings",
                                            allowed="the baseline's settings"))
            continue
        result.cells += 1
        current = metrics(same[-1])
        for name, base in sorted(entry["metrics"].items()):
            if name.split("/")[0] not in kinds:
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
