"""Shared by the sub-layer parity drivers (finercut.py, blockpruner.py, llm_drop.py, write_sublayer_fixtures.py):
the harness's calibration windows and unit sizes on SmolLM2-135M fp32, CPU.

Not run on its own: each driver imports it (`import sublayer_common as common`, from this folder, which is the
script's own folder on sys.path). It puts the repository root on sys.path so that `bench` and `methods` import
from this checkout. Output folder of every driver: PARITY_OUT (default /tmp/official-parity).
"""
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the repository root
OUT = os.environ.get("PARITY_OUT", "/tmp/official-parity")  # the drivers' JSON outputs

sys.path.insert(0, str(REPO))
from bench.data.calibration import Calibration, CalibSpec  # noqa: E402
from bench.models import arch, sublayer, zoo  # noqa: E402

SPECS = {"llmdrop": dict(source="wikipedia", n_samples=8, seq_len=128, batch_size=8),
         "greedy": dict(source="wikipedia", n_samples=1, seq_len=32, batch_size=1)}


def load(spec_name):
    model, tok = zoo.load(zoo.DEFAULT_MODEL, device="cpu", dtype="float32")
    calib = Calibration(CalibSpec(**SPECS[spec_name]), model, tok)
    return model, tok, calib


def sizes(model):
    u = sublayer.unit_parameters(model)
    return u, arch.count_parameters(model)
