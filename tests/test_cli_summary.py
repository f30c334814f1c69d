"""`bench run`'s closing table is the page's headline table: the same numbers (one speed-up estimator, the
paired-bootstrap Avg interval), names and row order as leaderboard.md, from the same store; at 100 columns
no name or number is cut."""

from __future__ import annotations

import re
from pathlib import Path

from rich.console import Console

from bench import report
from bench.cli import progress

STORE = Path(__file__).resolve().parent.parent / "reports" / "store"


def _page_tables(text: str) -> dict[str, list[list[str]]]:
    """model section title -> the rows of its first table (the headline), cells stripped."""
    out, title = {}, None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("## ") and not line.startswith("## What") and not line.startswith("## Columns"):
            title = line[3:].strip()
        elif title and line.startswith("| Method") and title not in out:
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append([c.strip().replace("\\|", "|") for c in row.strip("|").split(" | ")])
            out[title] = rows
    return out


def _full_table(text: str, title: str) -> tuple[list[str], list[list[str]]]:
    section = text.split(f"## {title}\n", 1)[1]
    start = section.index("All measures of")
    lines = []
    for ln in section[start:].splitlines()[1:]:
        if ln.startswith("|"):
            lines.append(ln)
        elif lines:
            break
    header = [c.strip() for c in lines[0].strip("|").split(" | ")]
    return header, [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines[2:]]


def test_terminal_table_and_page_show_the_same_numbers_names_and_order(tmp_path):
    page = (report.render(STORE, tmp_path, figures=False)[0]).read_text()
    tables = _page_tables(page)
    terminal = progress.headline_tables(STORE)
    assert [t[0] for t in terminal] == list(tables)  # the same models, in the same order
    for title, header, rows, _ in terminal:
        page_rows = [[c.replace("**", "").replace("`", "") for c in r] for r in tables[title]]
        assert rows == page_rows  # every cell: names, order, Avg accuracy, speed-up, ...
        full_header, full_rows = _full_table(page, title)
        acc = next(i for i, h in enumerate(full_header) if h.startswith("Avg acc"))
        dec = next(i for i, h in enumerate(full_header) if h.startswith("Decode ×"))
        h_acc, h_dec = header.index("Avg acc %"), header.index("Decode ×")
        for short, full in zip(rows, full_rows, strict=True):
            assert short[h_acc] == full[acc] and short[h_dec] == full[dec]  # headline = full table


def test_closing_table_at_100_columns_cuts_nothing():
    console = Console(width=100, record=True, force_terminal=False, color_system=None)
    progress.headline_summary(STORE, None, console)
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 100
    assert "accuracy/avg" not in text and "prune_s" not in text  # no internal keys
    smol = text.split("smollm2-135m (95 % intervals in brackets)")[1]
    # the speed-up of the record that the terminal once showed as its own `speedup` is the page's estimator
    for title, _, rows, _ in progress.headline_tables(STORE):
        if title != "smollm2-135m":
            continue
        for row in rows:
            name = row[0].removesuffix(" (collapsed)")  # the mark goes under the name at 100 columns
            assert re.search(rf"^ {re.escape(name)}\s+{re.escape(row[1])}\s", smol, re.M), row[:2]
            for value in row[2:]:
                estimate, _, interval = value.partition(" [")
                assert estimate in smol and (not interval or f"[{interval}" in smol)
