"""Bits per byte and KL to dense reach every cell's record, the leaderboard and `bench regress` (tiny model,
a local corpus, so nothing is downloaded)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import test_runner_fixtures as fx

from bench.cli import main
from bench.results.regress import compare, load_baseline
from bench.run import config, runner

tiny_env = fx.tiny_env  # a shared fixture


@pytest.mark.slow
def test_bits_per_byte_and_kl_in_every_cell(tiny_env, tmp_path):
    fidelity = {"corpora": [str(tiny_env.corpus)], "window": 16, "max_documents": 4, "batch_size": 2}
    spec = config.from_yaml(tiny_env.config(tmp_path / "run.yaml", methods=["shortgpt", "last"],
                                            eval={"fidelity": fidelity}))
    store = tmp_path / "store"
    outcome = runner.run(dataclasses.replace(spec, store=str(store)))
    assert not outcome.failures
    records = {r["cell"]["method"]: r for r in outcome.records.values()}
    dense = records["dense"]["fidelity"][0]
    assert dense["bits_per_byte"] > 0 and dense["kl_to_dense"] is None and dense["documents"] == 4
    for method in ("shortgpt", "last"):
        part = records[method]["fidelity"][0]
        assert part["kl_to_dense"] > 0 and 0 <= part["top1_agreement"] <= 1
        low, high = part["kl_to_dense_ci"]
        assert low <= part["kl_to_dense"] <= high
        assert part["bits_per_byte"] != dense["bits_per_byte"]
        docs = [json.loads(line) for line in
                (store / "cells" / records[method]["key"] / "fidelity.jsonl").read_text().splitlines()]
        assert len(docs) == 4 and all(d["kl"] >= 0 for d in docs)
    out = tmp_path / "pages"
    assert main(["report", "--store", str(store), "--out", str(out), "--no-figures"]) == 0
    page = (out / "leaderboard.md").read_text()
    full = page.split("All measures of", 1)[1]  # the full table (the headline table comes first)
    header = next(line for line in full.splitlines() if line.startswith("| Method"))
    assert "Bits/byte corpus.txt [95 % CI] ↓" in header and "KL to dense corpus.txt, nats/token [95 % CI] ↓" in header
    baseline = tmp_path / "baseline.json"
    assert main(["regress", "--update-baseline", "--baseline", str(baseline), "--store", str(store)]) == 0
    cell = next(c for c in load_baseline(baseline)["cells"] if c["method"] == "last")
    assert {"bits_per_byte/corpus.txt", "kl_to_dense/corpus.txt"} <= set(cell["metrics"])
    assert compare(load_baseline(baseline), store).findings == []
    path = store / "cells" / records["last"]["key"] / "record.json"
    raw = json.loads(path.read_text())
    raw["fidelity"][0]["kl_to_dense"] += 0.05
    path.write_text(json.dumps(raw))
    (f,) = compare(load_baseline(baseline), store).findings
    assert (f.metric, f.kind, f.direction) == ("kl_to_dense/corpus.txt", "fidelity", "worse")
