"""Report groups: one model under one evaluation setting, its dense row first, then its pruned rows.

Rows whose evaluation settings differ (other tasks, limit, shots, batch size, perplexity windows, dtype,
device, latency probe) are not comparable, so a model gets one `Group` per distinct setting. Within a group
each cell identity (model, method, parameters, budget, seed) keeps its newest record; older ones are
counted as superseded. Derived numbers (retained performance, speed-up, accuracy lost per removed
parameter) are computed here from the records, never typed in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from bench.core.record import CellRecord
from bench.metrics import load_record
from bench.results.rows import Row, budget_sort, canonical, identity, method_order, settings


@dataclass
class Group:
    """One model under one evaluation setting: its dense row and its pruned rows, in table order."""

    model: str
    settings: dict[str, Any]
    dense: Row | None
    rows: list[Row]
    title: str = ""
    slug: str = ""
    superseded: int = 0

    @property
    def all_rows(self) -> list[Row]:
        return ([self.dense] if self.dense else []) + self.rows

    @cached_property
    def task_metrics(self) -> dict[str, str]:
        """task -> the headline metric its column shows, in the records' task order."""
        out: dict[str, str] = {}
        for row in self.all_rows:
            for task, t in row.tasks.items():
                out.setdefault(task, t.metric or "acc")
        return out

    @cached_property
    def corpora(self) -> dict[str, dict[str, Any]]:
        """corpus -> its first perplexity entry (window, windows, tokens)."""
        out: dict[str, dict[str, Any]] = {}
        for row in self.all_rows:
            for corpus, p in row.perplexity.items():
                out.setdefault(corpus, p)
        return out

    @property
    def budgets(self) -> list[dict[str, Any]]:
        seen = {canonical(r.budget): r.budget for r in self.rows}
        return sorted(seen.values(), key=budget_sort)

    @property
    def seeds(self) -> list[Any]:
        return sorted({r.seed for r in self.rows if r.seed is not None})

    def speedup(self, row: Row) -> float | None:
        """Decode tokens/s over the dense row's (the record's own figure first)."""
        if row.dense:
            return 1.0 if row.decode_tok_s else None
        own = row.decode_speedup
        if own is not None:
            return own
        base = self.dense.decode_tok_s if self.dense else None
        return row.decode_tok_s / base if row.decode_tok_s and base else None

    def retained(self, row: Row) -> float | None:
        """Retained performance: the row's average accuracy as % of the dense average."""
        base = self.dense.accuracy if self.dense else None
        return 100.0 * row.accuracy / base if row.accuracy is not None and base else None

    def loss_per_10pct(self, row: Row) -> float | None:
        """Accuracy points lost per 10 % of the parameters removed (lower keeps more per parameter)."""
        base = self.dense.accuracy if self.dense else None
        if row.dense or row.accuracy is None or base is None or not row.param_ratio:
            return None
        return 100.0 * (base - row.accuracy) / (10.0 * row.param_ratio)


@dataclass
class Collection:
    """Everything a report shows: the groups, the failed cells, and every record read."""

    groups: list[Group]
    failed: list[CellRecord] = field(default_factory=list)
    records: list[CellRecord] = field(default_factory=list)

    @property
    def ok_records(self) -> list[CellRecord]:
        return [r for r in self.records if r.ok]


def _row_order(order: list[str]):
    def key(row: Row):
        rank = order.index(row.method) if row.method in order else len(order)
        seed = row.seed if isinstance(row.seed, int) else -1
        return (rank, row.method, row.variant, budget_sort(row.budget), seed, row.key)

    return key


def _variants(rows: list[Row]) -> None:
    """Name the parameters that differ between rows of the same method (empty when they all agree)."""
    by_method: dict[str, list[Row]] = {}
    for row in rows:
        by_method.setdefault(row.method, []).append(row)
    for method_rows in by_method.values():
        keys = sorted({k for r in method_rows for k in r.params})
        differing = [k for k in keys if len({canonical(r.params.get(k)) for r in method_rows}) > 1
                     and k != "seed"]
        for r in method_rows:
            r.variant = ", ".join(f"{k}={canonical(r.params.get(k))}" for k in differing)


def _slug(text: str) -> str:
    base = text.rstrip("/").rsplit("/", 1)[-1] if text.startswith(("/", ".", "~")) else text
    out = "".join(c if c.isalnum() or c in "-_." else "-" for c in base.lower()).strip("-.")
    return out or "model"


def _settings_text(s: dict[str, Any]) -> str:
    n = len(s["tasks"])
    parts = [f"{n} task{'s' if n > 1 else ''}" if n else "no accuracy tasks"]
    if s["tasks"]:
        parts.append(f"limit {s['limit']}" if s["limit"] is not None else "full splits")
        parts.append(f"{s['num_fewshot']}-shot")
    parts += [f"batch {s['batch_size']}", f"{s['dtype']} on {s['device']}"]
    return ", ".join(parts)


def collect(records: Iterable[CellRecord | dict[str, Any]]) -> Collection:
    """Group the records of a store (any order) into report groups; deterministic for the same records."""
    records = sorted((load_record(r) for r in records), key=lambda r: (str(r.finished_at or ""), str(r.key)))
    ok = [r for r in records if r.ok]
    failed = [r for r in records if not r.ok]
    buckets: dict[tuple[str, str], dict[tuple, CellRecord]] = {}
    superseded: dict[tuple[str, str], int] = {}
    for record in ok:  # oldest first, so a newer record of the same cell replaces an older one
        gkey = (str(record.cell.model), canonical(settings(record)))
        cells = buckets.setdefault(gkey, {})
        ident = identity(record)
        if ident in cells:
            superseded[gkey] = superseded.get(gkey, 0) + 1
        cells[ident] = record
    order = method_order()
    groups: list[Group] = []
    newest = {g: max(r.finished_at or "" for r in cells.values()) for g, cells in buckets.items()}
    # per model, the group with the newest record first
    for gkey in sorted(buckets, key=lambda g: (g[0], _desc(newest[g]), g[1])):
        rows = [Row(r) for r in buckets[gkey].values()]
        dense = [r for r in rows if r.dense]
        pruned = [r for r in rows if not r.dense]
        _variants(pruned)
        pruned.sort(key=_row_order(order))
        groups.append(Group(model=gkey[0], settings=json.loads(gkey[1]), dense=dense[-1] if dense else None,
                            rows=pruned, superseded=superseded.get(gkey, 0)))
    _name_groups(groups)
    return Collection(groups=groups, failed=failed, records=records)


def _desc(text: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in text)


def _name_groups(groups: list[Group]) -> None:
    per_model: dict[str, list[Group]] = {}
    for g in groups:
        per_model.setdefault(g.model, []).append(g)
    used: set[str] = set()
    for model, gs in per_model.items():
        for i, g in enumerate(gs, 1):
            several = len(gs) > 1
            g.title = f"{model} ({_settings_text(g.settings)})" if several else model
            slug = _slug(model) + (f"-s{i}" if several else "")
            while slug in used:
                slug += "_"
            used.add(slug)
            g.slug = slug


def settings_text(group: Group) -> str:
    return _settings_text(group.settings)
