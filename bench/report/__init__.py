"""Reports: a pure function of the result store (runs no model, imports no torch).

    reports/leaderboard.md      per model: dense first, then every method and budget with every measure;
                                accuracy retained per removed parameter; figures; failed cells
    reports/paper-tables.md     the LLM-Streamline paper's layout, one table per model and budget
    reports/figures/*.png       layer importance and removed layers, accuracy vs decoder layers removed,
                                accuracy vs speed-up (intervals as error bars, a chance line)

Claims follow paired statistics over the per-sample records (`evidence`, over `bench.stats`).

Both pages start with a provenance header. The same store gives byte-identical markdown: no clock, no
absolute paths, a fixed order. Modules: `rows` (one record as a report row), `groups` (rows grouped by
model and settings), `markdown` (formatting), `provenance`, `leaderboard`, `paper`, `figures`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from bench.atomic import write_text
from bench.errors import BenchError

log = logging.getLogger(__name__)

LEADERBOARD = "leaderboard.md"
PAPER_TABLES = "paper-tables.md"
FIGURES = "figures"


class EmptyStoreError(BenchError):
    """A store without any record to report on."""


def load(store: str | os.PathLike):
    """The store's records as report groups (`bench.report.groups.Collection`)."""
    from bench.report.groups import collect
    from bench.store import Store

    s = Store(store)
    records = s.records()
    if not records:
        raise EmptyStoreError(f"the store {s.root} holds no records",
                              f"run `bench run --store {store}` first, or point --store at a store")
    return collect(records)


def load_samples(store: str | os.PathLike, coll) -> dict[str, dict[str, list]]:
    """record key -> task -> per-sample records, for every finished cell a report group shows."""
    from bench.stats.recompute import samples_of
    from bench.store import Store

    s = Store(store)
    return {row.key: samples_of(s, row.key) for g in coll.groups for row in g.all_rows}


def load_fidelity(store: str | os.PathLike, coll) -> dict[str, list]:
    """record key -> its fidelity.jsonl rows (per-document sums), for every cell a report group shows."""
    from bench.store import Store

    s = Store(store)
    out = {}
    for g in coll.groups:
        for row in g.all_rows:
            try:
                rows = s.read_artifact(row.key, "fidelity.jsonl")
            except (OSError, ValueError):   # a damaged file: no paired fidelity test for this cell
                log.warning("unreadable fidelity.jsonl of cell %s; its fidelity is not compared", row.key)
                rows = None
            if rows:
                out[row.key] = rows
    return out


def default_out(store: str | os.PathLike) -> Path:
    """Where a store's pages go unless the user names a folder: beside its records, `<store>/reports`
    (never the checkout's tracked `reports/`, which is regenerated only on purpose)."""
    return Path(store) / "reports"


def render(store: str | os.PathLike, out: str | os.PathLike, figures: bool = True) -> list[Path]:
    """Write the report pages (and figures) for `store` into `out`; returns the files written."""
    from bench.report import figures as figs
    from bench.report import leaderboard, paper, provenance
    from bench.report.evidence import evidence

    coll = load(store)
    ev = evidence(coll, load_samples(store, coll), load_fidelity(store, coll))
    out = Path(out)
    written: list[Path] = []
    drawn: dict[str, list[figs.Figure]] = {}
    if figures:
        for group in coll.groups:
            drawn[group.slug] = figs.render(group, out / FIGURES, ev.of(group))
            written += [f.path for f in drawn[group.slug]]
    header = provenance.header(coll)
    pages = {LEADERBOARD: leaderboard.render(coll, header, drawn, FIGURES, ev), PAPER_TABLES: paper.render(coll, header, ev)}
    for name, text in pages.items():
        write_text(out / name, text)
        written.append(out / name)
    log.debug("report of %d records written to %s", len(coll.records), out)
    return written
