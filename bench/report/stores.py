"""Two result stores side by side (`bench compare A B`): the cells both hold (same model, method,
parameters, budget and seed; the newest finished record of each), with paired differences where the
documents match.

For each matching cell: Avg accuracy under A and under B, the paired difference A − B on the documents
both scored (stratified paired bootstrap interval, sign-flip p; Holm-adjusted over every compared cell),
bits per byte under each, and the decode speed-up under each (measured in different runs, so not paired).
Evaluation settings that differ (bench.results.rows.settings) are named per cell: a difference across
settings is reported but is not a like-for-like comparison. Runs no model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from bench.results.rows import Row, budget_label, differences, identity, settings


@dataclass
class CellPair:
    model: str
    method: str
    budget: str
    seed: Any
    a: Row
    b: Row
    settings_differ: list[str] = field(default_factory=list)
    diff: Any = None  # bench.stats.compare.Comparison (None without shared per-sample records)

    @property
    def label(self) -> str:
        return f"{self.model} · {self.method} · {self.budget}" + (f" · seed {self.seed}" if self.seed else "")


@dataclass
class StoreComparison:
    pairs: list[CellPair]
    only_a: int
    only_b: int


def _newest(store) -> dict[tuple, Row]:
    from bench.metrics import load_record
    from bench.results.store import Store

    out: dict[tuple, Row] = {}
    records = sorted((load_record(r) for r in Store(store).records() if r.get("status") == "ok"),
                     key=lambda r: str(r.finished_at or ""))
    for record in records:
        out[identity(record)] = Row(record)
    return out


def compare_stores(store_a: str | os.PathLike, store_b: str | os.PathLike) -> StoreComparison:
    """Every cell both stores hold, A against B (see the module docstring)."""
    from bench.results.recompute import samples_of
    from bench.results.store import Store
    from bench.stats.compare import Family, compare

    a, b = _newest(store_a), _newest(store_b)
    sa, sb = Store(store_a), Store(store_b)
    family = Family()
    pairs = []
    from bench.results.rows import method_order

    known = method_order()
    order = sorted(set(a) & set(b), key=lambda k: (k[0], k[1] != "dense", known.index(k[1]) if k[1] in known
                                                   else len(known), k[1], k[3], str(k[4])))
    for ident in order:
        ra, rb = a[ident], b[ident]
        pair = CellPair(ra.model, ra.method, "-" if ra.dense else budget_label(ra.budget), ra.seed, ra, rb,
                        differences(settings(ra.record), settings(rb.record)))
        metrics = {t: s.metric or "acc" for t, s in ra.tasks.items() if t in rb.tasks}
        x, y = samples_of(sa, ra.key), samples_of(sb, rb.key)
        if metrics and all(x.get(t) and y.get(t) for t in metrics):
            pair.diff = family.add(compare(x, y, metrics, ("A", "B")))
        pairs.append(pair)
    family.close()
    return StoreComparison(pairs, len(set(a) - set(b)), len(set(b) - set(a)))


def rows(result: StoreComparison) -> tuple[list[str], list[list[str]]]:
    """The comparison as table rows (strings), in model, then method order."""
    from bench.metrics.latency import speedup_measure
    from bench.report import markdown as md

    def bpb(row: Row) -> str:
        values = [f.bits_per_byte for f in row.record.part("fidelity") or [] if f.bits_per_byte is not None]
        return md.num(values[0], 3) if values else md.DASH

    def speed(row: Row) -> str:
        if row.dense:
            return md.DASH
        m = speedup_measure(row.record.latency.by_batch().get(row.record.latency.batch_size)
                            if row.record.latency else None)
        return md.DASH if m is None else f"{m.value:.2f}×"

    header = ["Cell", "Avg acc % A", "Avg acc % B", "A − B, points [95 % CI]", "p (Holm)", "Bits/byte A",
              "Bits/byte B", "Decode × A", "Decode × B", "Settings that differ"]
    out = []
    for p in result.pairs:
        d = p.diff
        out.append([p.label, md.pct(p.a.accuracy), md.pct(p.b.accuracy),
                    md.interval(d.diff.estimate, d.diff.low, d.diff.high, sign=True) if d else md.DASH,
                    md.pvalue(d.p_holm) + (" *" if d is not None and d.significant else "") if d else md.DASH,
                    bpb(p.a), bpb(p.b), speed(p.a), speed(p.b), "; ".join(p.settings_differ) or "none"])
    return header, out

