"""What the runner reports while it works: an `Observer` receives run events.

start / cell_start / stage / cell_done / cell_skipped / note. The base class records timings (for ETAs)
and shows nothing, so library callers stay silent; `LogObserver` logs one line per event (Slurm jobs);
the CLI's terminal views (rich bars, plain lines) live in `bench.cli.progress`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"



class Observer:
    """Receives run events; this base class ignores them all."""

    def __init__(self):
        self.total = self.todo = self.done = 0
        self.started = time.perf_counter()
        self.cell_seconds: list[float] = []
        self.kind_seconds: dict[bool, list[float]] = {True: [], False: []}  # dense / pruned cells apart
        self.stage_seconds: dict[str, float] = {}  # last duration of each stage name (the next estimate)
        self.pending: dict[str, tuple[bool, float | None]] = {}  # key -> (dense, stored estimate, seconds)
        self.running: tuple[str, float] | None = None  # the running cell's key and start

    def start(self, total: int, todo: int) -> None:
        self.total, self.todo, self.started = total, todo, time.perf_counter()

    def expect(self, cells, estimates: dict[str, float] | None = None) -> None:
        """The cells still to compute, each with what the store says a cell like it took (`estimates`,
        by key): the ETA then counts down from those, dense and pruned cells apart."""
        estimates = estimates or {}
        self.pending = {c.key: (c.dense, estimates.get(c.key)) for c in cells}

    def cell_start(self, cell) -> None:
        self.running = (cell.key, time.perf_counter())

    def cell_done(self, cell, record: dict[str, Any]) -> None:
        self.done += 1
        self.pending.pop(cell.key, None)
        self.running = None
        seconds = (record.get("timings") or {}).get("total_s")
        if seconds is not None:
            self.cell_seconds.append(seconds)
            self.kind_seconds[cell.dense].append(seconds)

    def cell_skipped(self, cell, why: str) -> None:
        self.done += 1
        self.pending.pop(cell.key, None)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stage_seconds[name] = time.perf_counter() - start

    def note(self, message: str) -> None:
        pass

    def eta(self) -> float | None:
        """Seconds left: per cell still to compute, this run's mean of its kind (dense or pruned), else the
        store's time for a cell like it, else this run's mean of any cell; the running cell's time so far
        is subtracted, so the estimate counts down. None while some cell has no estimate at all."""
        if not self.pending:
            if not self.cell_seconds:
                return None
            return sum(self.cell_seconds) / len(self.cell_seconds) * max(self.todo - self.done, 0)
        now = time.perf_counter()
        left = 0.0
        for key, (dense, stored) in self.pending.items():
            same = self.kind_seconds[dense]
            guess = sum(same) / len(same) if same else stored
            if guess is None and self.cell_seconds:
                guess = sum(self.cell_seconds) / len(self.cell_seconds)
            if guess is None:
                return None
            if self.running is not None and self.running[0] == key:
                guess = max(guess - (now - self.running[1]), 0.0)
            left += guess
        return left

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LogObserver(Observer):
    """One log line per event, through `logging` (for batch jobs, whose output goes to a log file)."""

    def start(self, total, todo):
        super().start(total, todo)
        log.info("matrix: %d cells, %d to compute", total, todo)

    def cell_start(self, cell):
        log.info("%s: start", cell.label)

    def cell_done(self, cell, record):
        super().cell_done(cell, record)
        log.info("%s: %s in %s", cell.label, record.get("status"), fmt_s((record.get("timings") or {}).get("total_s")))

    def cell_skipped(self, cell, why):
        super().cell_skipped(cell, why)
        log.info("%s: skipped (%s)", cell.label, why)

    @contextlib.contextmanager
    def stage(self, name):
        start = time.perf_counter()
        with super().stage(name):
            yield
        log.info("  %s done in %.1fs", name, time.perf_counter() - start)

    def note(self, message):
        log.info("%s", message)
