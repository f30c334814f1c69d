"""What a run shows while it works: rich progress bars on a terminal, plain log lines elsewhere or under CI.

The runner reports to a `bench.core.observer.Observer`. `RichObserver` draws the matrix bar with an
ETA (mean seconds per finished cell x cells left), the running cell, and the running stage with the
time it took in the previous cell as its estimate; `PlainObserver` writes one line per event. `summary`
renders the leaderboard table at the end.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from typing import Any, TextIO

from bench.core.observer import Observer, fmt_s
from bench.core.record import CellError

log = logging.getLogger(__name__)


class DropRedraws:
    """A stderr wrapper that drops carriage-return redraws (third-party tqdm bars, e.g. lm-eval's, which
    are created with an explicit `disable=False`, so TQDM_DISABLE cannot silence them) and passes the rest."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self._dropped = False

    def write(self, text: str) -> int:
        if "\r" in text:
            self._dropped = True
            return len(text)
        if text == "\n" and self._dropped:
            self._dropped = False
            return len(text)
        return self.stream.write(text)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def outcome_text(record: dict[str, Any]) -> str:
    """A finished cell in a few words: its error, or every declared metric's progress words."""
    from bench.metrics import load_record, metrics

    rec = load_record(record)
    if not rec.ok:
        err = rec.error or CellError()
        return f"FAILED in {err.stage}: {err.type}: {err.message}"
    bits = [word for m in metrics() for word in m.progress_words(rec)]
    return "ok" + (f" ({', '.join(bits)})" if bits else "")


class PlainObserver(Observer):
    """One line per event on `stream` (stderr by default): for logs, pipes and CI."""

    def __init__(self, stream: TextIO | None = None):
        super().__init__()
        self.stream = stream
        self.current = ""
        self._saved_stderr = None

    def _mute(self):
        if self._saved_stderr is None:
            self._saved_stderr = sys.stderr
            sys.stderr = DropRedraws(sys.stderr)

    def close(self):
        if self._saved_stderr is not None:
            sys.stderr = self._saved_stderr
            self._saved_stderr = None

    def _say(self, text: str) -> None:
        self._mute()
        print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=self.stream or sys.stderr, flush=True)

    def start(self, total, todo):
        super().start(total, todo)
        self._say(f"matrix: {total} cells, {todo} to compute, {total - todo} already in the store")

    def cell_start(self, cell):
        super().cell_start(cell)
        self.current = f"[{self.done + 1}/{self.todo}] {cell.label}"
        self._say(f"{self.current}: start")

    def cell_done(self, cell, record):
        super().cell_done(cell, record)
        seconds = (record.get("timings") or {}).get("total_s")
        self._say(f"[{self.done}/{self.todo}] {cell.label}: {outcome_text(record)} in {fmt_s(seconds)}; "
                  f"ETA {fmt_s(self.eta())}")

    def cell_skipped(self, cell, why):
        super().cell_skipped(cell, why)
        self._say(f"[{self.done}/{self.todo}] {cell.label}: skipped ({why})")

    @contextlib.contextmanager
    def stage(self, name):
        expected = self.stage_seconds.get(name)
        hint = f" (last time {fmt_s(expected)})" if expected is not None else ""
        start = time.perf_counter()
        with super().stage(name):
            yield
        self._say(f"  {name}: {time.perf_counter() - start:.1f}s{hint}")  # one line per finished stage

    def note(self, message):
        self._say(message)


class RichObserver(Observer):
    """Rich progress bars: the matrix with its ETA, the running cell, the running stage."""

    def __init__(self, console=None):
        super().__init__()
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = console or Console(stderr=True)
        outer = self

        class EtaColumn(TextColumn):
            def render(self, task):
                from rich.text import Text

                if task.fields.get("kind") == "matrix":
                    eta = outer.eta()
                    return Text(f"ETA {fmt_s(eta)}" if eta is not None else "ETA after the first cell")
                expected = task.fields.get("expected")
                if expected is None:
                    return Text("")
                left = expected - (task.elapsed or 0.0)
                return Text(f"~{fmt_s(max(left, 0))} left" if left > 0 else "longer than last time")

        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=30),
                                 MofNCompleteColumn(), TimeElapsedColumn(), EtaColumn(""),
                                 console=self.console, transient=False, redirect_stderr=True,
                                 redirect_stdout=True)
        self.matrix = self.cell_task = None
        self._handlers: list[tuple[logging.StreamHandler, Any]] = []
        self._saved_stderr = None

    def _start_live(self):
        if self.matrix is not None:
            return
        self.progress.start()
        # library log lines go through the live display instead of tearing it
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.__stderr__, sys.__stdout__):
                self._handlers.append((handler, handler.setStream(sys.stderr)))
        self._saved_stderr = sys.stderr
        sys.stderr = DropRedraws(sys.stderr)
        self.matrix = self.progress.add_task("matrix", total=None, kind="matrix")

    def start(self, total, todo):
        super().start(total, todo)
        self._start_live()
        self.progress.update(self.matrix, total=todo, completed=0,
                             description=f"matrix ({total - todo} of {total} cells already stored)")

    def cell_start(self, cell):
        super().cell_start(cell)
        self._start_live()
        if self.cell_task is not None:
            self.progress.remove_task(self.cell_task)
        self.cell_task = self.progress.add_task(f"[bold]{cell.label}", total=None, kind="cell")

    def cell_done(self, cell, record):
        super().cell_done(cell, record)
        if self.cell_task is not None:
            self.progress.remove_task(self.cell_task)
            self.cell_task = None
        color = "green" if record.get("status") == "ok" else "red"
        self.console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] [{color}]{cell.label}[/]: {outcome_text(record)} "
                           f"({fmt_s((record.get('timings') or {}).get('total_s'))})", soft_wrap=True)
        if self.matrix is not None:
            self.progress.update(self.matrix, completed=self.done)

    def cell_skipped(self, cell, why):
        super().cell_skipped(cell, why)
        self.console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] skipped {cell.label}: {why}", soft_wrap=True)
        if self.matrix is not None:
            self.progress.update(self.matrix, completed=self.done)

    @contextlib.contextmanager
    def stage(self, name):
        self._start_live()
        expected = self.stage_seconds.get(name)
        task = self.progress.add_task(f"  {name}", total=None, kind="stage", expected=expected)
        try:
            with super().stage(name):
                yield
        finally:
            self.progress.remove_task(task)

    def note(self, message):
        self.console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}", soft_wrap=True)

    def close(self):
        if self.matrix is not None:
            sys.stderr = self._saved_stderr
            self.progress.stop()
            for handler, old in self._handlers:
                handler.setStream(old)
            self._handlers.clear()
            self.matrix = None


def wants_plain(stream: TextIO | None = None) -> bool:
    """Plain lines when the stream is not a terminal, or under CI."""
    stream = stream or sys.stderr
    return bool(os.environ.get("CI")) or not (hasattr(stream, "isatty") and stream.isatty())


def make_observer() -> Observer:
    return PlainObserver() if wants_plain() else RichObserver()


# --------------------------------------------------------------------------------------------- summary


def headline_tables(store, keys: list[str] | None = None) \
        -> list[tuple[str, list[str], list[list[str]], list[str]]]:
    """(title, header, rows) per report group holding one of `keys` (all groups when None): the page's
    headline table (bench.report.leaderboard.headline), the same strings, order and estimators, from the
    same store; markdown emphasis dropped for the terminal."""
    from bench import report
    from bench.report.evidence import evidence
    from bench.report.leaderboard import headline

    coll = report.load(store)
    ev = evidence(coll, report.load_samples(store, coll))
    wanted = None if keys is None else set(keys)
    out = []
    for group in coll.groups:
        if wanted is not None and not any(r.key in wanted for r in group.all_rows):
            continue
        header, rows, _, notes = headline(ev.of(group))
        plain = [[c.replace("**", "").replace("`", "") for c in row] for row in rows]
        out.append((group.title, header, plain, [n.replace("**", "").replace("`", "") for n in notes]))
    return out


def headline_summary(store, keys: list[str] | None, console) -> None:
    """`bench run`'s closing table(s): the page's headline table per model (names never cut). Where the
    rows do not fit the console, each interval goes under its estimate."""
    from rich import box
    from rich.table import Table

    for title, header, rows, notes in headline_tables(store, keys):
        natural = sum(max(len(r[i]) for r in [header, *rows]) + 3 for i in range(len(header)))
        if natural > console.width:
            rows = [[c.replace(" [", "\n[", 1) if i >= 2 else c.replace(" (collapsed)", "\n(collapsed)")
                     for i, c in enumerate(r)] for r in rows]
        table = Table(title=f"{title} (95 % intervals in brackets)", title_justify="left", box=box.SIMPLE_HEAD,
                      pad_edge=False, collapse_padding=True)
        for i, col in enumerate(header):
            # only headers wrap (the last, `Layers removed`); a value never does
            table.add_column(col, justify="left" if i < 2 else "right", no_wrap=i < len(header) - 1,
                             min_width=7 if i == len(header) - 1 else None)
        for row in rows:
            table.add_row(*row)
        console.print(table)
        for note in notes:
            console.print(note)


def leaderboard_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per record (bench.results.store.flat_row): dense first within each model, then by method and
    budget."""
    from bench.results.store import flat_row

    rows = [flat_row(r) for r in records]

    def order(row):
        return (row["model"] or "", row["kind"] != "dense", row["method"] or "",
                row["budget_ratio"] or 0.0, row["budget_layers"] or 0, row["seed"] or 0)

    return sorted(rows, key=order)


def _in_summary(metric, name: str) -> bool:
    return metric is None or metric.in_summary(name)


def summary(records: list[dict[str, Any]], console=None, title: str = "leaderboard") -> None:
    """The leaderboard as a rich table (plain text when not a terminal): the cell, then a column per value
    of every declared metric (bench.metrics) that some record has."""
    from rich.console import Console
    from rich.table import Table

    from bench.metrics import metric_for

    console = console or Console()
    rows = leaderboard_rows(records)
    fixed = {"key", "status", "kind", "model", "method", "label", "params", "seed", "budget_layers",
             "budget_ratio", "n_layers", "layers_removed", "removed_layers", "params_total", "params_after",
             "param_ratio", "speedup", "seconds", "device", "dtype", "limit", "error", "finished_at"}
    names = [k for k in dict.fromkeys(k for r in rows for k in r)
             if k not in fixed and not k.endswith(":stderr") and _in_summary(metric_for(k), k)]
    table = Table(title=title)
    for col in ("model", "method", "budget", "removed", "params", *names, "decode ×", "status"):
        table.add_column(col, justify="left" if col in ("model", "method", "status") else "right")
    for r in rows:
        budget = ("-" if r["kind"] == "dense" else f"{r['budget_ratio']:g}" if r["budget_ratio"] is not None
                  else f"{r['budget_layers']} L")
        removed = "-" if r["layers_removed"] is None else f"{r['layers_removed']}/{r['n_layers']}"
        params = "-" if r["param_ratio"] is None else f"-{100 * r['param_ratio']:.1f}%"
        status = "ok" if r["status"] == "ok" else f"{r['status']}: {(r['error'] or '')[:40]}"
        model = r["model"] if "/" not in (r["model"] or "") else os.path.basename(r["model"].rstrip("/"))
        shown = [metric_for(n).show(r.get(n)) if r.get(n) is not None else "-" for n in names]
        speedup = "-" if r["speedup"] is None else f"{r['speedup']:.2f}"
        table.add_row(model, r["method"], budget, removed, params, *shown, speedup, status)
    console.print(table)
