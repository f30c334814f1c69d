"""Reports: a pure function of the result store (runs no model, imports no torch).

    reports/leaderboard.md      per model: dense first, then every method and budget with every measure;
                                accuracy retained per removed parameter; figures; failed cells
    reports/paper-tables.md     the LLM-Streamline paper's layout, one table per model and budget
    reports/figures/*.png       layer importance, accuracy vs parameters removed, accuracy vs speed-up

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


def default_out(store: str | os.PathLike) -> Path:
    """Where a store's pages go unless the user names a folder: beside its records, `<store>/reports`
    (never the checkout's tracked `reports/`, which is regenerated only on purpose)."""
    return Path(store) / "reports"


def render(store: str | os.PathLike, out: str | os.PathLike, figures: bool = True) -> list[Path]:
    """Write the report pages (and figures) for `store` into `out`; returns the files written."""
    from bench.report import figures as figs
    from bench.report import leaderboard, paper, provenance

    coll = load(store)
    out = Path(out)
    written: list[Path] = []
    drawn: dict[str, list[figs.Figure]] = {}
    if figures:
        for group in coll.groups:
            drawn[group.slug] = figs.render(group, out / FIGURES)
            written += [f.path for f in drawn[group.slug]]
    header = provenance.header(coll)
    pages = {LEADERBOARD: leaderboard.render(coll, header, drawn, FIGURES), PAPER_TABLES: paper.render(coll, header)}
    for name, text in pages.items():
        write_text(out / name, text)
        written.append(out / name)
    log.debug("report of %d records written to %s", len(coll.records), out)
    return written
