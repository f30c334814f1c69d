"""Crash safety: `bench run` killed with SIGKILL in the middle of a cell loses only that cell; a rerun
finishes the matrix without recomputing what was stored. Two concurrent `bench run`s on one store
compute every cell once and leave a consistent store."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pandas as pd
import test_runner_fixtures as fx
from test_runner_fixtures import PYTHON, subprocess_env

from bench.cli import main

tiny_env = fx.tiny_env  # a shared fixture

# runs `bench run` with the perplexity stage of the N-th cell hanging (after writing a marker)
HANG = """
import os, sys, time, pathlib
import bench.metrics.perplexity as perplexity
marker, hang_at = pathlib.Path(sys.argv[1]), int(sys.argv[2])
original, calls = perplexity.corpus_perplexity, [0]
def hanging(*args, **kwargs):
    calls[0] += 1
    if calls[0] == hang_at:
        marker.write_text(str(os.getpid()))
        time.sleep(600)
    return original(*args, **kwargs)
perplexity.corpus_perplexity = hanging
from bench.cli import main
sys.exit(main(sys.argv[3:]))
"""


def _records(store):
    return {p.parent.name: json.loads(p.read_text()) for p in store.glob("cells/*/record.json")}


def test_kill_9_mid_cell_then_resume(tiny_env, tmp_path, capsys):
    cfg = tiny_env.config(tmp_path / "run.yaml", methods=["shortgpt", "last", "random"])
    store, marker = tmp_path / "store", tmp_path / "hanging"
    args = ["run", "--config", str(cfg), "--store", str(store), "--plain"]
    proc = subprocess.Popen([PYTHON, "-c", HANG, str(marker), "3", *args, "--no-report"], env=subprocess_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        deadline = time.time() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "the run never reached the third cell"
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)  # in the middle of cell 3 (dense, shortgpt done)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    before = _records(store)
    assert sorted(r["cell"]["method"] for r in before.values()) == ["dense", "shortgpt"]
    assert all(r["status"] == "ok" for r in before.values())
    index = [json.loads(line) for line in (store / "results.jsonl").read_text().splitlines()]
    assert sorted(r["key"] for r in index) == sorted(before)

    assert main([*args, "--no-report"]) == 0  # the rerun completes the rest
    assert "2 cells computed, 2 skipped" in capsys.readouterr().out
    after = _records(store)
    assert sorted(r["cell"]["method"] for r in after.values()) == ["dense", "last", "random", "shortgpt"]
    for key, record in before.items():  # finished cells were not recomputed
        assert after[key]["finished_at"] == record["finished_at"]
    assert len(pd.read_parquet(store / "results.parquet")) == 4
    assert not list(store.rglob("*.tmp")) or all(p.stat().st_size >= 0 for p in store.rglob("*.tmp"))


def test_two_concurrent_runs_on_one_store(tiny_env, tmp_path):
    cfg = tiny_env.config(tmp_path / "run.yaml", methods=["shortgpt", "last", "random"])
    store = tmp_path / "store"
    args = [PYTHON, "-m", "bench", "run", "--config", str(cfg), "--store", str(store), "--plain", "--no-report"]
    procs = [subprocess.Popen(args, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=tmp_path) for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    computed = [int(re.search(r"(\d+) cells computed", out).group(1)) for out, _ in outs]
    assert sum(computed) == 4, outs  # each cell computed by exactly one of the two processes
    records = _records(store)
    assert len(records) == 4 and all(r["status"] == "ok" for r in records.values())
    index = [json.loads(line) for line in (store / "results.jsonl").read_text().splitlines()]
    assert sorted(r["key"] for r in index) == sorted(records)
    pruned = [r for r in records.values() if r["cell"]["kind"] == "pruned"]
    assert all(r["perplexity"][0]["perplexity"] > 1 for r in pruned)
    assert len(pd.read_parquet(store / "results.parquet")) == 4
