"""Compare a result store with a baseline, per cell, in both directions.

Evaluation on fixed documents is deterministic, so a baseline (`reports/baseline.json`, schema 2) keeps,
per cell (model, method, parameters, budget, seed), its evaluation settings, the values of every declared
metric (bench.metrics) with a regress rule, and its per-sample answers: per task the documents, which were answered correctly (by the task's headline
metric) and every choice's log-likelihood. `compare` reports, for the store's newest record of each
baseline cell:

- flips: documents whose correctness changed (right -> wrong and wrong -> right, counted apart); a flip on
  a document whose log-likelihoods moved, but all by at most `loglik`, is float noise at a near-tie and
  not reported (a flip with no movement at all means the scoring changed, and is);
- drift: documents where some choice's log-likelihood moved by more than `loglik` nats;
- every declared metric by its own rule (bench.metrics): accuracy, only for cells without per-sample
  records, |change| > `acc_points` points; perplexity |Δ mean NLL per token| > `nll` nats; bits per
  byte and KL to dense |Δ| > `bpb` / `kl`; the decode speed-up's paired 95 % interval disjoint from the
  baseline's (without intervals, a change beyond `latency_pct` %); a metric of another kind by its rule;
- a baseline cell the store lacks, whose newest record failed, or that ran under other settings.

Every change is reported with its direction: an improvement nobody expected also needs a look and a new
baseline. Pure functions over records; the CLI prints. Importing this module loads no torch.

Shares its name with bench.cli.regress: the regression check the `bench regress` subcommand runs.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.core.atomic import write_text
from bench.core.errors import BenchError
from bench.core.record import CellRecord
from bench.metrics import load_record, metric_for, metrics
from bench.results.rows import budget_label, canonical, differences, identity, newest_date, settings
from bench.results.store import Store

SCHEMA = 2


class BaselineError(BenchError):
    """A baseline file that is missing or malformed, or a store with nothing to compare."""


@dataclass(frozen=True)
class Tolerances:
    loglik: float = 0.01       # nats: per-choice log-likelihood drift beyond float noise
    acc_points: float = 1.0    # cells without per-sample records: |accuracy change| in points
    nll: float = 0.01          # nats per token
    bpb: float = 0.005         # bits per byte
    kl: float = 0.005          # nats per token (KL to dense)
    latency_pct: float = 15.0  # speed-up change without intervals (%)

    def value(self, tolerance: float | str) -> float:
        """A rule's tolerance: a number, or the name of one of these fields."""
        return float(getattr(self, tolerance)) if isinstance(tolerance, str) else float(tolerance)


@dataclass(frozen=True)
class Finding:
    """One change (or a cell that could not be compared)."""

    model: str
    method: str
    budget: str
    metric: str
    kind: str               # flips | drift | a metric's group (accuracy, perplexity, ...) | missing | failed | settings
    baseline: float | None
    current: float | None
    change: str             # human-readable: "3 right -> wrong, 1 wrong -> right (-4.0 points)", "+0.021 nats"
    allowed: str            # the tolerance it broke
    direction: str = ""     # worse | better | changed | ""


@dataclass
class Comparison:
    findings: list[Finding] = field(default_factory=list)
    compared: int = 0       # metrics and per-task sample sets compared
    cells: int = 0          # baseline cells found in the store
    new_cells: int = 0      # store cells the baseline lacks (not compared)
    context_changes: set[str] = field(default_factory=set)  # `name: old → new` of compared cells' context

    @property
    def worse(self) -> list[Finding]:
        return [f for f in self.findings if f.direction != "better"]


# ------------------------------------------------------------------------------------------ metrics


def tracked(record: CellRecord | dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """value name -> {"value", "stderr"[, "low", "high"]} for every value of every metric with a regress
    rule (absent measurements are left out)."""
    record = load_record(record)
    out = {}
    for metric in metrics():
        if metric.regress is None:
            continue
        for name, m in metric.read(record).items():
            out[name] = {"value": m.value, "stderr": m.stderr}
            if m.low is not None:
                out[name].update(low=m.low, high=m.high)
    return out


def metric_kinds() -> list[str]:
    """The metric groups `bench regress` compares (what --skip can leave out)."""
    return list(dict.fromkeys(m.group for m in metrics() if m.regress is not None))


def answers(samples: list[dict[str, Any]] | None, record: CellRecord) -> dict[str, dict[str, Any]]:
    """task -> {"docs": ["subtask/doc_id", ...], "correct": "0110...", "loglik": [[...], ...]} by the task's
    headline metric (log-likelihoods rounded to 1e-5 nats, far below any tolerance)."""
    tasks = record.accuracy.tasks if record.accuracy is not None else {}
    out: dict[str, dict[str, Any]] = {}
    for row in samples or []:
        task = row.get("task")
        metric = (tasks[task].metric if task in tasks else None) or "acc"
        value = row.get(metric, row.get("acc"))
        if task is None or value is None:
            continue
        entry = out.setdefault(task, {"docs": [], "correct": "", "loglik": []})
        entry["docs"].append(f"{row.get('subtask', '')}/{row['doc_id']}")
        entry["correct"] += "1" if value else "0"
        entry["loglik"].append([round(float(x), 5) for x in row.get("loglik") or []])
    return out


def context(record: CellRecord) -> dict[str, Any]:
    """What else a baseline cell remembers about how it was evaluated (not part of its comparability, but
    named when a comparison fails or numbers move): the document subset, the engine and the versions."""
    prov = record.provenance or {}
    docs = prov.get("documents") or {}
    return {"subset": docs.get("subset") or ("first" if (record.accuracy and record.accuracy.limit) else None),
            "subset_seed": docs.get("subset_seed"), "engine": prov.get("engine"),
            "harness": prov.get("harness_version"), "versions": prov.get("versions") or {}}


def _cell_fields(record: CellRecord) -> dict[str, Any]:
    cell = record.cell
    return {"model": cell.model, "method": cell.method, "params": cell.params or {}, "budget": cell.budget,
            "seed": cell.seed}


def _near(record: CellRecord, entry: dict[str, Any]) -> bool:
    cell = record.cell
    return (str(cell.model), str(cell.method), canonical(cell.budget), cell.seed) == \
        (str(entry.get("model")), str(entry.get("method")), canonical(entry.get("budget")), entry.get("seed"))


def _ident(entry: dict[str, Any]) -> tuple:
    return (str(entry.get("model")), str(entry.get("method")), canonical(entry.get("params") or {}),
            canonical(entry.get("budget")), entry.get("seed"))


# ----------------------------------------------------------------------------------------- baseline


def _records(store: str | os.PathLike) -> list[CellRecord]:
    """The store's records, typed, oldest first."""
    records = [load_record(r) for r in Store(store).records()]
    return sorted(records, key=lambda r: (str(r.finished_at or ""), str(r.key)))


def build_baseline(store: str | os.PathLike) -> dict[str, Any]:
    """A baseline from the newest finished record of every cell in `store`."""
    s = Store(store)
    records = [r for r in _records(store) if r.ok]
    if not records:
        raise BaselineError(f"the store {store} holds no finished records to make a baseline from",
                            f"run `bench run --store {store}` first")
    cells = []
    for record in {identity(r): r for r in records}.values():
        cells.append({**_cell_fields(record), "key": record.key, "settings": settings(record),
                      "context": context(record), "metrics": tracked(record),
                      "answers": answers(s.read_artifact(record.key, "samples.jsonl"), record)})
    cells.sort(key=lambda c: canonical([c["model"], c["method"], c["params"], c["budget"], c["seed"]]))
    commits = sorted({(r.provenance.get("git_commit") or {}).get("sha") or "" for r in records} - {""})
    return {"schema": SCHEMA, "date": newest_date(records), "git_commits": commits, "cells": cells}


def dumps(baseline: dict[str, Any]) -> str:
    """The baseline as JSON with one line per cell (diffable, and a tenth of an indented file's size)."""
    head = {k: v for k, v in baseline.items() if k != "cells"}
    lines = [json.dumps(c, sort_keys=True) for c in baseline["cells"]]
    text = json.dumps(head, sort_keys=True)[:-1]
    return text + ', "cells": [\n' + ",\n".join(lines) + "\n]}\n"


def check_replaceable(path: str | os.PathLike, force: bool = False) -> None:
    """`path` may be (re)written with a baseline: it does not exist, or it is a baseline (any schema), or
    `force` says the user means to replace whatever it is. A user's own file is never overwritten silently."""
    path = Path(path)
    if not path.exists() or force:
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        ours = isinstance(old, dict) and isinstance(old.get("schema"), int) and isinstance(old.get("cells"), list)
    except (OSError, ValueError):
        ours = False
    if not ours:
        raise BaselineError(f"--baseline {path} exists and is not a baseline; it is not overwritten",
                            "give --baseline a new file, or pass --force to replace this one")


def write_baseline(store: str | os.PathLike, path: str | os.PathLike) -> dict[str, Any]:
    baseline = build_baseline(store)
    write_text(path, dumps(baseline))
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
        raise BaselineError(f"the baseline {path} is not a schema-{SCHEMA} baseline",
                            "rewrite it from a trusted store with --update-baseline")
    for number, cell in enumerate(baseline["cells"], 1):
        problem = _cell_problem(cell)
        if problem:
            raise BaselineError(f"the baseline {path}: cell {number} is not a baseline cell ({problem})",
                                "rewrite it from a trusted store with --update-baseline")
    return baseline


def _cell_problem(cell: Any) -> str | None:
    """What makes `cell` unusable as a baseline cell (a hand-edited or damaged file), or None."""
    if not isinstance(cell, dict):
        return f"a {type(cell).__name__}, not an object"
    if not isinstance(cell.get("metrics"), dict) or not all(isinstance(v, dict) for v in cell["metrics"].values()):
        return "its metrics are not an object of objects"
    for name in ("params", "budget", "settings", "answers"):
        if cell.get(name) is not None and not isinstance(cell[name], dict):
            return f"its {name} is not an object"
    for task, entry in (cell.get("answers") or {}).items():
        if not isinstance(entry, dict) or not isinstance(entry.get("docs"), list) \
                or not isinstance(entry.get("correct"), str) or not isinstance(entry.get("loglik"), list) \
                or not len(entry["docs"]) == len(entry["correct"]) == len(entry["loglik"]) \
                or not all(isinstance(ll, list) and all(isinstance(x, int | float) for x in ll)
                           for ll in entry["loglik"]):
            return f"its answers of {task} are not docs, correct and loglik of one length"
    return None


# ---------------------------------------------------------------------------------------- comparing


def _finding(entry: dict[str, Any], metric: str, kind: str, base=None, cur=None, change="", allowed="",
             direction="") -> Finding:
    return Finding(str(entry["model"]), str(entry["method"]), budget_label(entry.get("budget")) if entry.get("budget")
                   else "-", metric, kind, base, cur, change, allowed, direction)


def check_answers(entry: dict[str, Any], task: str, base: dict[str, Any], cur: dict[str, Any] | None,
                  tol: Tolerances) -> list[Finding]:
    """Flips and log-likelihood drift of one task's documents."""
    if cur is None:
        return [_finding(entry, f"answers/{task}", "missing", change="no per-sample records in the store")]
    now = {d: (c, ll) for d, c, ll in zip(cur["docs"], cur["correct"], cur["loglik"], strict=True)}
    lost = gained = drifted = 0
    worst = 0.0
    for doc, c, ll in zip(base["docs"], base["correct"], base["loglik"], strict=True):
        if doc not in now:
            continue
        c2, ll2 = now[doc]
        drift = max((abs(a - b) for a, b in zip(ll, ll2, strict=True)), default=0.0) if len(ll) == len(ll2) \
            else math.inf
        worst = max(worst, drift)
        if drift > tol.loglik:
            drifted += 1
        if c != c2 and (drift > tol.loglik or drift == 0.0):   # 0 < drift <= tol: float noise at a near-tie
            lost += c == "1"
            gained += c == "0"
    out = []
    n = len(base["docs"])
    missing = sum(d not in now for d in base["docs"])
    if missing:
        out.append(_finding(entry, f"answers/{task}", "missing", change=f"{missing} of {n} documents not scored"))
    if lost or gained:
        points = 100.0 * (gained - lost) / n
        direction = "worse" if lost > gained else "better" if gained > lost else "changed"
        out.append(_finding(entry, f"answers/{task}", "flips", base["correct"].count("1") / n,
                            (base["correct"].count("1") - lost + gained) / n,
                            f"{lost} right→wrong, {gained} wrong→right ({points:+.1f} points)",
                            "no flip beyond a float tie", direction))
    if drifted:
        out.append(_finding(entry, f"loglik/{task}", "drift", None, worst,
                            f"{drifted} of {n} documents, max |Δ| {worst:.3g} nats", f"≤ {tol.loglik:g} nats",
                            "changed"))
    return out


def check_metric(entry: dict[str, Any], name: str, base: dict, cur: dict, tol: Tolerances) -> Finding | None:
    """The finding for one value (its metric's regress rule), or None when it is within tolerance."""
    metric = metric_for(name)
    if metric is None or metric.regress is None or base.get("value") is None or cur.get("value") is None:
        return None
    broken = metric.regress.check(base, cur, tol, metric.direction)
    if broken is None:
        return None
    change, allowed, *direction = broken
    return _finding(entry, name, metric.group, base["value"], cur["value"], change, allowed,
                    direction[0] if direction else "worse")


def compare(baseline: dict[str, Any], store: str | os.PathLike, tol: Tolerances = Tolerances(),
            allow_missing: bool = False, kinds: frozenset[str] | None = None) -> Comparison:
    """Every change of `store` against `baseline` (see the module docstring for the rules); `kinds`: the
    metric groups to compare (default all; "accuracy" also covers the per-sample answers)."""
    s = Store(store)
    records = _records(store)
    if not records:
        raise BaselineError(f"the store {store} holds no records to compare", f"run `bench run --store {store}` first")
    kinds = frozenset(metric_kinds()) if kinds is None else kinds
    ok_records = [r for r in records if r.ok]
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
                near = [r for r in ok_records if _near(r, entry)]
                change = "not in the store"
                if near:  # the same model, method, budget and seed under other method parameters
                    diff = differences(entry.get("params"), near[-1].cell.params or {}, str(entry.get("method")))
                    change += f"; the store has it with {', '.join(diff)}"
                result.findings.append(_finding(entry, "-", "missing", change=change))
            continue
        if not candidates[-1].ok:
            err = candidates[-1].error
            result.findings.append(_finding(entry, "-", "failed", change=f"{err.type if err else None}: "
                                            f"{str(err.message if err else None)[:80]}"))
            continue
        if not same:
            diff = differences(entry.get("settings"), settings(ok[-1]))
            diff += [d for d in differences(entry.get("context"), context(ok[-1])) if entry.get("context")]
            result.findings.append(_finding(entry, "-", "settings",
                                            change="evaluated under other settings: " + "; ".join(diff),
                                            allowed="the baseline's settings"))
            continue
        result.cells += 1
        record = same[-1]
        if entry.get("context"):
            result.context_changes.update(differences(entry["context"], context(record)))
        current = tracked(record)
        base_answers = entry.get("answers") or {}
        if "accuracy" in kinds and base_answers:
            cur_answers = answers(s.read_artifact(record.key, "samples.jsonl"), record)
            for task, base in sorted(base_answers.items()):
                result.compared += 1
                result.findings += check_answers(entry, task, base, cur_answers.get(task), tol)
        for name, base in sorted(entry["metrics"].items()):
            metric = metric_for(name)
            if metric is None or metric.group not in kinds or (metric.name == "accuracy" and base_answers):
                continue   # accuracy is judged document by document where the baseline has the documents
            if name not in current:
                result.findings.append(_finding(entry, name, "missing", base.get("value"), None, "not measured"))
                continue
            result.compared += 1
            finding = check_metric(entry, name, base, current[name], tol)
            if finding is not None:
                result.findings.append(finding)
    result.new_cells = len(set(by_ident) - seen)
    return result
