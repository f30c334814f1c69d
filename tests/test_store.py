"""The result store: atomic records, the index, the parquet view, concurrent writers (no torch here)."""

from __future__ import annotations

import json
import multiprocessing as mp

import pandas as pd
import pytest

from bench.core.errors import ConfigError
from bench.results.store import INDEX, VIEW, Store, check_location


def _record(key: str, method: str = "shortgpt", status: str = "ok", when: str = "2025-01-01T00:00:00") -> dict:
    return {
        "schema": 1, "key": key, "status": status, "finished_at": when,
        "cell": {"kind": "pruned", "model": "m", "method": method, "params": {}, "seed": 0,
                 "budget": {"layers": 2, "ratio": None}, "label": f"m · {method}"},
        "pruning": {"n_layers": 8, "layers_removed": 2, "removed_layers": [3, 4], "params_total": 100,
                    "params_after": 80, "param_ratio": 0.2, "seconds": 1.5, "training": None},
        "accuracy": {"average": 0.5, "limit": 10, "tasks": {"piqa": {"acc": 0.5, "acc_norm": 0.6, "score": 0.6}}},
        "perplexity": [{"corpus": "C4-sample", "perplexity": 12.5}],
        "latency": {"prefill_ms": 3.0, "decode_tokens_per_s": 50.0, "decode_speedup_vs_dense": 1.2},
        "stability": {"mean": 0.9}, "timings": {"total_s": 4.0},
        "error": None if status == "ok" else {"type": "TrainingError", "message": "NaN"},
    }


def test_put_get_index_view(tmp_path):
    store = Store(tmp_path / "s")
    assert not (tmp_path / "s").exists()  # nothing is created before the first write
    store.put("k1", _record("k1"), {"plan.json": {"ops": []}, "samples.jsonl": [{"task": "piqa", "doc_id": 0}]})
    store.put("k2", _record("k2", "laco", "failed", "2025-01-02"))
    assert store.is_done("k1") and not store.is_done("k2") and not store.is_done("k3")
    assert store.read_artifact("k1", "samples.jsonl") == [{"task": "piqa", "doc_id": 0}]
    assert [r["key"] for r in store.index()] == ["k1", "k2"]
    assert store.index()[1]["error"] == "NaN"
    store.put("k1", _record("k1", when="2025-01-03"))  # a recomputed cell replaces its line
    assert [r["key"] for r in store.index()] == ["k2", "k1"]
    path = store.write_view()
    df = pd.read_parquet(path)
    assert set(df["key"]) == {"k1", "k2"} and df.loc[df.key == "k1", "accuracy/piqa"].item() == 0.5
    assert df.loc[df.key == "k1", "perplexity/C4-sample"].item() == 12.5  # a column per declared metric value
    assert df.loc[df.key == "k1", "latency/prefill_ms"].item() == 3.0 and df.loc[df.key == "k1", "stability"].item() == 0.9
    assert not list((tmp_path / "s").rglob("*.tmp"))


def test_index_is_rebuilt_from_records(tmp_path):
    store = Store(tmp_path)
    store.put("a", _record("a"))
    store.put("b", _record("b"))
    (tmp_path / INDEX).write_text(json.dumps({"key": "a"}) + "\n")  # as if killed before the index update
    store.sync_index()
    assert sorted(r["key"] for r in store.index()) == ["a", "b"]


def test_store_path_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        check_location(f)
    with pytest.raises(ConfigError, match="under the file"):
        Store(f / "sub")


def _writer(root: str, worker: int, n: int) -> None:
    store = Store(root)
    for i in range(n):
        key = f"w{worker}-{i}"
        store.put(key, _record(key, when=f"2025-01-01T00:00:{i:02d}.{worker}"), {"plan.json": {"i": i}})
        store.put("shared", _record("shared", when=f"2025-01-02T00:00:{i:02d}.{worker}"))
    store.write_view()


def test_concurrent_writers_keep_the_store_consistent(tmp_path):
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, 15)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = Store(tmp_path)
    keys = [r["key"] for r in store.index()]
    assert sorted(keys) == sorted({*(f"w{w}-{i}" for w in range(4) for i in range(15)), "shared"})
    assert len(keys) == len(set(keys))
    for record in store.records():
        assert record["status"] == "ok"
    assert len(pd.read_parquet(tmp_path / VIEW)) == 61
