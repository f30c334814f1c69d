"""Progress: an ETA that counts down inside a running cell, from the store's timings of cells like the
ones left, dense and pruned cells apart; one plain line per finished stage; labelled latency lines."""

from __future__ import annotations

import io
import logging

from bench.cli.progress import PlainObserver
from bench.core import observer as observer_module
from bench.core.observer import Observer
from bench.results.store import Store
from bench.run.cells import Cell
from bench.run.runner import stored_seconds

DENSE = Cell("m", "dense", key="d")
PRUNED = [Cell("m", "shortgpt", ratio=0.25, seed=0, key="p1"), Cell("m", "last", ratio=0.25, seed=0, key="p2")]


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_eta_counts_down_and_keeps_dense_and_pruned_apart(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(observer_module.time, "perf_counter", clock)
    obs = Observer()
    obs.expect([DENSE, *PRUNED], {"d": 60.0, "p1": 10.0, "p2": 12.0})  # the store's times
    obs.start(3, 3)
    assert obs.eta() == 82.0
    obs.cell_start(DENSE)
    clock.now += 20
    assert obs.eta() == 62.0  # the running cell's time so far is subtracted
    clock.now += 50
    assert obs.eta() == 22.0  # a cell past its estimate counts as nearly done, not negative
    obs.cell_done(DENSE, {"timings": {"total_s": 70.0}})
    assert obs.eta() == 22.0  # the dense cell's 70 s says nothing about the pruned cells
    obs.cell_start(PRUNED[0])
    clock.now += 8
    obs.cell_done(PRUNED[0], {"timings": {"total_s": 8.0}})
    assert obs.eta() == 8.0  # now this run's pruned mean
    obs.cell_start(PRUNED[1])
    clock.now += 3
    assert obs.eta() == 5.0


def test_eta_without_any_estimate_waits_for_the_first_cell():
    obs = Observer()
    obs.expect([DENSE, *PRUNED], {})
    obs.start(3, 3)
    assert obs.eta() is None


def test_stored_seconds_reads_cells_like_the_ones_left(tmp_path):
    store = Store(tmp_path / "s")

    def put(key, method, budget, seconds, kind="pruned"):
        store.put(key, {"key": key, "status": "ok", "finished_at": key,
                        "cell": {"model": "m", "method": method, "budget": budget, "kind": kind},
                        "timings": {"total_s": seconds}})

    put("a", "dense", None, 50.0, "dense")
    put("b", "shortgpt", {"layers": None, "ratio": 0.25}, 9.0)
    put("c", "laco", {"layers": None, "ratio": 0.125}, 21.0)
    got = stored_seconds(store, [DENSE, *PRUNED])
    assert got == {"d": 50.0, "p1": 9.0, "p2": 15.0}  # last: the mean of the model's pruned cells


def test_plain_lines_one_per_finished_stage():
    out = io.StringIO()
    obs = PlainObserver(out)
    obs.start(1, 1)
    obs.cell_start(DENSE)
    with obs.stage("accuracy piqa"):
        pass
    obs.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[-1].endswith("accuracy piqa: 0.0s")
    assert all(line.startswith("[bench ") for line in lines)


def test_latency_lines_name_the_model(tiny_env, caplog):
    from tiny import tiny_model

    from bench.evaluate.timing import measure_latencies

    model, _ = tiny_model("llama")
    with caplog.at_level(logging.INFO, logger="bench.evaluate.timing"):
        measure_latencies([model, model], prompt_tokens=4, new_tokens=2, warmup=0, repeats=1,
                          labels=["pruned", "dense (paired)"])
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("latency of the pruned model (batch 1, 4 + 2 tokens")
    assert lines[1].startswith("latency of the dense (paired) model")
