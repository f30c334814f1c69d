"""The cost meter: counts, wall time, and per-phase peak memory on CPU (not the process's lifetime peak)."""

import time

import pytest
import torch

from bench.core.costmeter import CostMeter, current_rss, max_rss

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_counts_and_result():
    with CostMeter("cpu") as meter:
        meter.add(tokens=100, steps=1, flops=1e6)
        meter.add(tokens=50, steps=1, flops=5e5)
        time.sleep(0.02)
    r = meter.result()
    assert (r["tokens"], r["steps"], r["flops"]) == (150, 2, 1.5e6)
    assert r["wall_seconds"] >= 0.02 and r["device"] == "cpu"
    assert r["memory_source"].startswith("rss sampled")


def test_peak_is_per_phase():
    big = 256 * 2**20
    with CostMeter("cpu") as first:
        x = torch.ones(big // 4, dtype=torch.float32)  # 256 MiB, touched
        time.sleep(0.05)
        del x
    with CostMeter("cpu") as second:
        time.sleep(0.05)
    assert first.peak_bytes - first.start_bytes >= 0.8 * big
    assert second.peak_bytes - second.start_bytes < 0.5 * big
    assert second.peak_bytes < first.peak_bytes
    assert max_rss() >= first.peak_bytes * 0.9  # the lifetime peak would have hidden the drop
    assert current_rss() > 0
