"""`bench run --max-memory` on the real thing: SmolLM2-135M (from the cache) dispatched across CPU and disk under a
200 MB cap, on real PIQA documents and the real C4 sample, records the in-memory run's numbers cell by cell
(dense and ShortGPT): accuracy, every per-choice log-likelihood, perplexity, stability."""

from __future__ import annotations

import json

import pytest
import yaml

from bench.cli import main
from bench.models import zoo

pytestmark = [pytest.mark.real, pytest.mark.slow]


@pytest.fixture(scope="module")
def smollm2():
    if not zoo.is_cached("smollm2-135m"):
        pytest.skip("SmolLM2-135M is not in the cache (bench ls models)")
    return "smollm2-135m"


def _records(store):
    out = {}
    for row in map(json.loads, (store / "results.jsonl").read_text().splitlines()):
        rec = json.loads((store / row["record"]).read_text())
        samples = store / row["record"].replace("record.json", "samples.jsonl")
        rec["logliks"] = [ll for line in samples.read_text().splitlines() for ll in json.loads(line)["loglik"]]
        out[row["key"]] = rec
    return out


def test_smollm2_under_a_memory_cap_records_the_in_memory_numbers(smollm2, tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({
        "models": [smollm2], "methods": ["shortgpt"], "ratios": [0.125], "device": "cpu", "dtype": "float32",
        "calib": {"source": "wikipedia", "n_samples": 4, "seq_len": 64, "batch_size": 4},
        "eval": {"tasks": ["piqa"], "limit": 6, "batch_size": 4, "latency": None, "fidelity": None, "stability": True,
                 "perplexity": {"corpora": ["c4"], "window": 128, "max_windows": 2, "batch_size": 2}}}))
    runs = {}
    for name, extra in (("memory", []), ("capped", ["--max-memory", "cpu=200MB", "--offload-dir",
                                                    str(tmp_path / "offload")])):
        assert main(["run", "--config", str(cfg), "--store", str(tmp_path / name), "--plain", "--no-report",
                     *extra]) == 0
        runs[name] = _records(tmp_path / name)
    assert runs["memory"].keys() == runs["capped"].keys() and len(runs["memory"]) == 2
    for key, a in runs["memory"].items():
        b = runs["capped"][key]
        assert b["provenance"]["dispatch"]["bytes_by_device"]["disk"] > 0
        assert "dispatch" not in a["provenance"]
        assert a["accuracy"]["tasks"]["piqa"]["score"] == b["accuracy"]["tasks"]["piqa"]["score"]
        assert len(a["logliks"]) == len(b["logliks"]) == 12
        assert max(abs(x - y) for x, y in zip(a["logliks"], b["logliks"], strict=True)) <= 1e-4
        assert a["perplexity"][0]["nll"] == pytest.approx(b["perplexity"][0]["nll"], abs=1e-6)
        assert (a.get("pruning") or {}).get("removed_original") == (b.get("pruning") or {}).get("removed_original")
