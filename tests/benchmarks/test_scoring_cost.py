"""pytest-benchmark: one boundary capture scoring three methods vs one plain forward pass (tiny model).

The real-model measurement (the issue's 1.2x target) is `python -m scripts.benchmarks.scoring_cost`.
"""

import pytest
import torch
from tiny import tiny_model

from bench.data.calibration import Calibration, CalibSpec
from methods.base import Budget
from scripts.benchmarks.scoring_cost import _plain_forward, _score_all


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    path = tmp_path_factory.mktemp("calib") / "text.txt"
    path.write_text("\n\n".join(f"Paragraph {i} about towers, rivers and the city of Paris." * 4 for i in range(60)))
    model, tok = tiny_model("llama", n_layers=8)
    return model, Calibration(CalibSpec(source=str(path), n_samples=16, seq_len=32), model, tok)


@pytest.mark.benchmark(group="scoring")
def test_plain_forward(benchmark, setup):
    model, calib = setup
    benchmark(_plain_forward, model, calib)


@pytest.mark.benchmark(group="scoring")
def test_capture_and_score_three_methods(benchmark, setup):
    model, calib = setup
    chosen = benchmark(_score_all, model, calib, Budget(layers=2))
    assert set(chosen) == {"shortgpt", "streamline", "angular"}
    assert all(len(v) == 2 for v in chosen.values())
    assert torch.get_num_threads() >= 1
