"""Latency records the host's load average, usable CPUs and CPU model; a measurement taken while the host
was busy (load above its usable CPUs) is marked, and the pages show its speed-up as not comparable."""

from __future__ import annotations

import dataclasses

import pytest

from bench.metrics import latency as latency_metric
from bench.run import config, runner

LATENCY = {"prompt_tokens": 4, "new_tokens": 3, "batch_size": 1, "warmup": 0, "repeats": 2}


def _run(tiny_env, tmp_path):
    spec = config.from_yaml(tiny_env.config(tmp_path / "run.yaml", methods=["last"], eval={"latency": LATENCY}))
    spec = dataclasses.replace(spec, store=str(tmp_path / "store"))
    outcome = runner.run(spec)
    assert not outcome.failures
    return spec, next(r for r in outcome.records.values() if r["cell"]["kind"] == "pruned")


def test_latency_records_load_cpus_and_cpu_model(tiny_env, tmp_path):
    _, pruned = _run(tiny_env, tmp_path)
    host = pruned["latency"]["host"]
    assert host["cpus"] >= 1 and host["cpu_model"] and host["load_1m_before"] is not None
    assert host["busy"] == (max(host["load_1m_before"], host["load_1m_after"]) > host["cpus"])
    assert pruned["provenance"]["cpu_model"] == host["cpu_model"] and "load_1m" in pruned["provenance"]


def test_a_busy_host_marks_the_speedup_not_comparable(tiny_env, tmp_path, monkeypatch):
    monkeypatch.setattr(latency_metric, "host_state", lambda: {"load_1m": 9.0, "cpus": 2, "cpu_model": "test CPU"})
    spec, pruned = _run(tiny_env, tmp_path)
    assert pruned["latency"]["host"]["busy"] is True
    from bench import report

    page = report.render(spec.store, tmp_path / "pages", figures=False)[0].read_text()
    assert "× (busy)" in page and "(busy): a speed-up measured while the host ran other work" in page


@pytest.mark.parametrize("load, busy", [(0.5, False), (2.5, True)])
def test_busy_means_more_load_than_usable_cpus(tiny_env, tmp_path, monkeypatch, load, busy):
    monkeypatch.setattr(latency_metric, "host_state", lambda: {"load_1m": load, "cpus": 2, "cpu_model": "x"})
    _, pruned = _run(tiny_env, tmp_path)
    assert pruned["latency"]["host"]["busy"] is busy
