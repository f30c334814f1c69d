"""The Slurm executor through submitit's LocalExecutor: each cell one job (a subprocess) writing into the
shared store; the dense wave runs before the pruned wave."""

from __future__ import annotations

import json

import pytest
from test_runner_fixtures import subprocess_env

from bench.cli import main


@pytest.fixture
def job_env(monkeypatch, tmp_path):
    for key, value in subprocess_env().items():  # the job subprocesses inherit it
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)


def test_two_cell_matrix_through_submitit_local(tiny_env, tmp_path, job_env, capsys):
    cfg = tiny_env.config(tmp_path / "run.yaml", methods=["shortgpt"], eval={"stability": True},
                          slurm={"cluster": "local", "gpus_per_cell": 0, "cpus_per_cell": 1, "time_min": 5})
    store = tmp_path / "store"
    rc = main(["run", "--config", str(cfg), "--store", str(store), "--executor", "slurm", "--plain", "--no-report"])
    out = capsys.readouterr()
    assert rc == 0, out.err[-3000:]
    records = [json.loads(p.read_text()) for p in store.glob("cells/*/record.json")]
    assert sorted(r["cell"]["method"] for r in records) == ["dense", "shortgpt"]
    for record in records:
        assert record["status"] == "ok" and record["provenance"]["executor"] == "slurm"
        assert record["provenance"]["slurm_job_id"]  # each cell ran as its own job
    assert len({r["provenance"]["pid"] for r in records}) == 2
    pruned = next(r for r in records if r["cell"]["kind"] == "pruned")
    assert pruned["pruning"]["layers_removed"] == 1
    index = [json.loads(line) for line in (store / "results.jsonl").read_text().splitlines()]
    assert len(index) == 2 and (store / "results.parquet").exists()
    assert list((store / ".submitit").glob("*_log.out"))  # submitit's job logs beside the store
    assert not list(store.rglob("%j"))  # the local executor never substitutes Slurm's %j
    # a rerun submits nothing
    assert main(["run", "--config", str(cfg), "--store", str(store), "--executor", "slurm", "--plain",
                 "--no-report"]) == 0
    assert "0 cells computed, 2 skipped" in capsys.readouterr().out


def test_submitit_parameters(tmp_path):
    from bench.results.store import Store
    from bench.run import config
    from bench.run.slurm import make_executor

    spec = config.resolve({"executor": "slurm", "slurm": {"partition": "gpu", "gpus_per_cell": 2,
                                                           "time_min": 30, "cluster": "local"}})
    executor = make_executor(spec, Store(tmp_path))
    params = executor._executor.parameters
    assert params["gpus_per_node"] == 2 and params["timeout_min"] == 30
