"""`bench run`'s closing terminal table: each metric's headline values only (`Metric.summary`), in whole rows
when written to a log or a pipe (the pages keep every value)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from bench.cli import progress

STORE = Path(__file__).resolve().parent.parent / "reports" / "store"


def _render(records, width: int) -> str:
    console = Console(width=width, record=True, force_terminal=False, color_system=None)
    progress.summary(records, console, title="leaderboard (store)")
    return console.export_text()


def test_closing_table_shows_headline_values_in_whole_rows():
    records = [json.loads(p.read_text()) for p in sorted(STORE.glob("cells/*/record.json"))]
    records = [r for r in records if r["cell"]["model"] == "smollm2-135m"]
    assert len(records) == 13
    text = _render(records, 220)  # what `bench run` uses when stdout is not a terminal
    header = next(line for line in text.splitlines() if "model" in line and "method" in line)
    assert "accuracy/avg" in header and "stability" in header and "decode ×" in header
    assert "accuracy/piqa" not in text and "latency/prefill_ms" not in text  # per-task and raw latency: pages
    assert "…" not in text  # nothing cut
    assert sum("streamline" in line for line in text.splitlines()) == 2
