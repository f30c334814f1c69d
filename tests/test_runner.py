"""Matrix expansion and cell keys; one dense load per model and at most one pruned variant alive."""

from __future__ import annotations

import dataclasses
import gc
import weakref

import numpy as np
import pytest

from bench.run import cells as matrix
from bench.run import config, runner
from bench.run.config import MethodSpec


def test_quick_matrix_is_dense_plus_methods_times_ratios():
    from bench.run import presets

    spec = config.resolve({})
    cells = matrix.expand(spec)
    quick = presets.get("quick")["methods"]
    assert len(quick) == 6 and len(cells) == 1 + 2 * len(quick)
    assert cells[0].dense and cells[0].budget is None and cells[0].seed is None
    assert {(c.method, c.ratio) for c in cells[1:]} == {(m, r) for m in quick for r in (0.125, 0.25)}
    assert len({c.key for c in cells}) == len(cells)
    assert [c.key for c in matrix.expand(spec)] == [c.key for c in cells]  # stable
    assert matrix.dense_cell(spec, "smollm2-135m") == cells[0]


def test_keys_follow_what_changes_results(monkeypatch):
    spec = config.resolve({"methods": ["laco", "random"], "ratios": [0.25]})
    base = {c.method: c.key for c in matrix.expand(spec)}
    same = dataclasses.replace(spec, store="elsewhere", force=True)
    assert {c.method: c.key for c in matrix.expand(same)} == base
    tuned = config.resolve({"methods": {"laco": {"threshold": 0.3}, "random": {}}, "ratios": [0.25]})
    keys = {c.method: c.key for c in matrix.expand(tuned)}
    assert keys["laco"] != base["laco"] and keys["random"] == base["random"] and keys["dense"] == base["dense"]
    explicit_default = config.resolve({"methods": {"laco": {"threshold": 0.45}, "random": {}}, "ratios": [0.25]})
    assert {c.method: c.key for c in matrix.expand(explicit_default)} == base  # defaults are resolved
    fewer = config.resolve({"methods": ["laco", "random"], "ratios": [0.25], "eval": {"limit": 5}})
    assert all(k != base[m] for m, k in ((c.method, c.key) for c in matrix.expand(fewer)))
    monkeypatch.setattr(matrix, "key_versions", lambda: {"harness": "9", "torch": "9", "transformers": "9",
                                                         "lm-eval": "9"})
    assert all(c.key != base[c.method] for c in matrix.expand(spec))


def test_a_seed_parameter_follows_the_run_seed():
    assert dict(matrix.resolve_params(MethodSpec("random"), 3))["seed"] == 3
    assert dict(matrix.resolve_params(MethodSpec("random", (("seed", 7),)), 3))["seed"] == 7
    assert dict(matrix.resolve_params(MethodSpec("streamline"), 5))["train_seed"] == 5
    defaults = (MethodSpec("streamline", (("train_samples", 8), ("train_seed", 1))),)
    params = dict(matrix.resolve_params(MethodSpec("streamline", (("train_samples", 16),)), 5, defaults))
    assert params["train_samples"] == 16 and params["train_seed"] == 1
    spec = config.resolve({"methods": ["random"], "ratios": [0.25], "seeds": [0, 1]})
    pruned = [c for c in matrix.expand(spec) if not c.dense]
    assert [dict(c.params)["seed"] for c in pruned] == [0, 1] and pruned[0].key != pruned[1].key


def test_the_run_needs_training_text_exactly_when_a_cell_keys_it():
    """`validate` and `prepare` ask `run_may_train`; a cell's key holds the training spec by `may_train` on the
    cell's resolved parameters: the two agree however the parameters are given."""
    given = {"plain": {"methods": ["shortgpt"]},
             "param": {"methods": {"shortgpt": {"heal": "lora"}}},
             "method_params": {"methods": ["shortgpt"], "method_params": {"shortgpt": {"heal": "lora"}}},
             "trains by kind": {"methods": ["streamline"]}}
    for name, over in given.items():
        spec = config.resolve({**over, "layers": [1]})
        keyed = any(matrix.may_train(c.method, dict(c.params)) for c in matrix.expand(spec) if not c.dense)
        assert matrix.run_may_train(spec) is keyed is (name != "plain"), name


def test_validate_checks_the_training_text_only_of_a_run_that_trains(tiny_env, tmp_path):
    from bench.core.errors import BenchError

    over = {"models": [str(tiny_env.model)], "methods": ["shortgpt"], "layers": [1], "device": "cpu",
            "calib": {"source": str(tiny_env.corpus), "seq_len": 32}, "train": {"source": "nope.txt"},
            "store": str(tmp_path / "store")}
    runner.validate(config.resolve(over))  # no cell trains: the missing training text does not matter
    healed = config.resolve({**over, "method_params": {"shortgpt": {"heal": "lora"}}})
    with pytest.raises(BenchError, match="training text source 'nope.txt'"):
        runner.validate(healed)


def test_perplexity_corpora_are_the_declared_ones(tiny_env, monkeypatch):
    """The runner knows the built-in corpora from bench/data/tasks.yaml (bench.data.tasks.CORPORA): every
    declared name and label is accepted and fetched, a newly declared corpus too, any other name rejected."""
    from bench.core.errors import UnknownNameError
    from bench.core.observer import Observer
    from bench.data import fetch, loaders, tasks
    from bench.models import zoo

    for corpus in tasks.CORPORA.values():
        runner.check_perplexity_corpus(corpus.name)
        runner.check_perplexity_corpus(corpus.label.upper())
    with pytest.raises(UnknownNameError, match="unknown perplexity corpus 'pile'"):
        runner.check_perplexity_corpus("pile")
    monkeypatch.setitem(tasks.CORPORA, "pile", tasks.CorpusInfo("pile", "Pile-sample", 10, "test", "c4_documents"))
    runner.check_perplexity_corpus("pile")
    runner.check_perplexity_corpus("pile-SAMPLE")
    fetched = []
    monkeypatch.setattr(fetch, "is_cached", lambda source: False)
    monkeypatch.setattr(fetch, "ensure", fetched.append)
    monkeypatch.setattr(zoo, "is_cached", lambda name: True)
    local = {"methods": ["shortgpt"], "calib": {"source": str(tiny_env.corpus)}, "eval": {"tasks": []}}
    for corpora, sources in (([str(tiny_env.corpus)], []), (["Pile-sample"], [loaders.EXL])):
        fetched.clear()
        runner.prepare(config.resolve({**local, "eval": {"tasks": [], "perplexity": {"corpora": corpora}}}),
                       Observer())
        assert fetched == sources, corpora


def test_dense_loaded_once_and_one_pruned_variant_at_a_time(tiny_env, tmp_path, monkeypatch):
    from bench.models import zoo
    from bench.run import pipeline

    loads, alive = [], []
    real_load, real_prune = zoo.load, pipeline.prune

    def counting_load(*args, **kwargs):
        loads.append(args)
        return real_load(*args, **kwargs)

    def watching_prune(*args, **kwargs):
        gc.collect()
        assert all(ref() is None for ref in alive), "a previous pruned variant is still alive"
        result = real_prune(*args, **kwargs)
        alive.append(weakref.ref(result.model))
        return result

    monkeypatch.setattr(zoo, "load", counting_load)
    monkeypatch.setattr(pipeline, "prune", watching_prune)
    spec = config.from_yaml(tiny_env.config(tmp_path / "run.yaml", methods=["shortgpt", "last", "random"]))
    spec = dataclasses.replace(spec, store=str(tmp_path / "store"))
    outcome = runner.run(spec)
    assert len(outcome.computed) == 4 and not outcome.failures
    assert len(loads) == 1
    gc.collect()
    assert all(ref() is None for ref in alive)


def test_pruned_cell_speedup_comes_from_an_interleaved_dense_measurement(tiny_env, tmp_path):
    latency = {"prompt_tokens": 4, "new_tokens": 3, "batch_size": 1, "batch_sizes": [1, 2], "warmup": 0,
               "repeats": 6}
    spec = config.from_yaml(tiny_env.config(tmp_path / "run.yaml", methods=["last"], eval={"latency": latency}))
    outcome = runner.run(dataclasses.replace(spec, store=str(tmp_path / "store")))
    assert not outcome.failures
    (dense,) = [r for r in outcome.records.values() if r["cell"]["kind"] == "dense"]
    (pruned,) = [r for r in outcome.records.values() if r["cell"]["kind"] == "pruned"]
    assert "dense_paired" not in dense["latency"]
    paired = pruned["latency"]["dense_paired"]
    assert len(paired["decode_tokens_per_s_runs"]) == 6
    assert pruned["latency"]["decode_speedup_vs_dense"] == pytest.approx(float(np.median(
        np.array(pruned["latency"]["decode_tokens_per_s_runs"]) / paired["decode_tokens_per_s_runs"])))
    assert pruned["latency"]["host"]["cpu_model"] and "load_1m_before" in pruned["latency"]["host"]
    # a paired interval on each speed-up, at every batch size; weights and KV cache per model
    assert set(pruned["latency"]["batches"]) == {"1", "2"}
    for part in pruned["latency"]["batches"].values():
        ci = part["decode_speedup_ci"]
        assert ci["repeats"] == 6 and 0 < ci["low"] <= ci["estimate"] <= ci["high"]
        assert part["prefill_speedup_ci"]["low"] is not None
        assert part["kv_cache_bytes"] < part["dense_paired"]["kv_cache_bytes"]   # one layer fewer
        assert 0 < part["weights_bytes"] < part["dense_paired"]["weights_bytes"]
    assert pruned["latency"]["batches"]["2"]["kv_cache_bytes"] == 2 * pruned["latency"]["kv_cache_bytes"]


def test_identical_pruned_models_share_one_evaluation(tiny_env, tmp_path, monkeypatch):
    """`last` plans the same removal under every seed: seed 1's cell reuses seed 0's evaluation (byte for
    byte, and says so), while `random` (a different model per seed) is evaluated per seed."""
    from bench.run import session as session_mod

    evaluated = []
    real_reuse = session_mod.ModelSession._reuse

    def counting_reuse(self, cell, model, pruning):
        evaluated.append((cell.method, cell.seed))
        return real_reuse(self, cell, model, pruning)

    monkeypatch.setattr(session_mod.ModelSession, "_reuse", counting_reuse)
    spec = config.from_yaml(tiny_env.config(tmp_path / "run.yaml", methods=["last", "random"]))
    spec = dataclasses.replace(spec, store=str(tmp_path / "store"), seeds=(0, 1))
    outcome = runner.run(spec)
    assert not outcome.failures
    by = {(r["cell"]["method"], r["cell"]["seed"]): r for r in outcome.records.values() if r["cell"]["kind"] == "pruned"}
    last0, last1 = by[("last", 0)], by[("last", 1)]
    assert last1["pruning"]["evaluation_from"] == last0["key"] and "evaluation_from" not in last0["pruning"]
    assert last0["pruning"]["model_identity"] == last1["pruning"]["model_identity"]
    assert last1["perplexity"] == last0["perplexity"] and last1["perplexity"]
    store = tmp_path / "store" / "cells"
    shared = [f for f in last0["files"] if f not in ("record.json", "plan.json", "timings.json")]
    assert shared and sorted(last1["files"]) == sorted(last0["files"])
    for name in shared:
        assert (store / last1["key"] / name).read_bytes() == (store / last0["key"] / name).read_bytes()
    assert ("last", 1) not in evaluated and ("last", 0) in evaluated
    seen = {}   # in computing order: a cell is evaluated exactly when no earlier cell had its model
    for method, seed in evaluated[1:]:
        seen.setdefault(by[(method, seed)]["pruning"]["model_identity"], (method, seed))
    for (method, seed), record in by.items():
        first = seen[record["pruning"]["model_identity"]]
        assert ((method, seed) in evaluated) == (first == (method, seed))
        assert record["pruning"].get("evaluation_from") == (None if first == (method, seed) else by[first]["key"])
    # a rerun into a fresh store from the stored twins: a new seed-2 `last` cell shares too
    spec2 = dataclasses.replace(spec, seeds=(0, 1, 2))
    evaluated.clear()
    outcome2 = runner.run(spec2)
    (last2,) = [r for r in outcome2.records.values() if r["cell"]["method"] == "last" and r["cell"]["seed"] == 2]
    assert last2["pruning"]["evaluation_from"] == last0["key"] and ("last", 2) not in evaluated
