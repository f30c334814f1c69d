"""The evaluation engine (bench.evaluate.engine) gives lm-eval's numbers: per-choice log-likelihoods equal
to plain HFLM + simple_evaluate's within 1e-3 + 1e-4 |ll| (fp32) and identical predictions, on an exported
pruned tiny model reusing the dense model's boundary states; plus its parts (plans -> boundaries, the state budget,
left truncation, the self-check's fallback, seeded document subsets). Synthetic documents in the real
schemas, nothing downloaded; tests/test_engine_real.py runs real SmolLM2 on real PIQA and ARC-Easy."""

from __future__ import annotations

import copy

import datasets
import pytest
import torch
from tiny import tiny_config, tiny_tokenizer
from transformers import AutoModelForCausalLM

from bench.data import fetch, loaders
from bench.evaluate.engine import BoundaryStates, Reuse, bisection_order, first_changed_layer, shared_prefix
from bench.evaluate.multiple_choice import evaluate_accuracy
from bench.models import arch
from bench.models.export import save_pruned
from methods.base import PrunePlan

ATOL, RTOL = 1e-3, 1e-4  # per choice, fp32: |engine - plain| <= ATOL + RTOL * |plain| (the engine's own check)

PIQA = [{"goal": g, "sol1": a, "sol2": b, "label": i % 2} for i, (g, a, b) in enumerate([
    ("To boil water,", "put it in a pot on the stove.", "put it in the freezer."),
    ("How do you dry a wet towel?", "Soak it in water.", "Hang it in the sun."),
    ("To open a jar,", "twist the lid.", "paint the lid blue."),
    ("Keep bread fresh", "leave it open on the table", "store it in a closed bag"),
    ("To light a candle,", "use a match.", "pour water on the wick."),
    ("Clean a window", "wipe it with a damp cloth", "throw mud at it"),
])]
ARC = [{"id": f"q{i}", "question": q, "answerKey": "B",
        "choices": {"text": list(c), "label": ["A", "B", "C", "D"][: len(c)]}} for i, (q, c) in enumerate([
    ("Which is the capital of France?", ("Berlin", "Paris", "Rome", "Madrid")),
    ("What does water do at zero degrees Celsius?", ("boils", "freezes", "melts")),
    ("Which tower is in Paris?", ("the leaning tower", "the Eiffel Tower", "the CN Tower", "Big Ben")),
    ("What jumps over the lazy dog?", ("a cat", "a quick brown fox", "a cow", "a fish")),
])]
WINOGRANDE = [
    {"sentence": "The trophy did not fit in the case because the _ was too big.", "option1": "trophy",
     "option2": "case", "answer": "1"},
    {"sentence": "The cat slept on the mat because the _ was warm.", "option1": "cat", "option2": "mat",
     "answer": "2"},
    {"sentence": "The fox jumped over the dog because the _ was lazy.", "option1": "fox", "option2": "dog",
     "answer": "2"},
]
TASKS = ["piqa", "arc_easy", "winogrande"]


@pytest.fixture(scope="module")
def toy_data():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fetch, "ensure", lambda name, force=False: None)
        mp.setattr(loaders, "piqa", lambda **_: datasets.DatasetDict(validation=datasets.Dataset.from_list(PIQA)))
        mp.setattr(loaders, "arc_easy", lambda **_: datasets.DatasetDict(
            test=datasets.Dataset.from_list(ARC), validation=datasets.Dataset.from_list(ARC)))
        mp.setattr(loaders, "winogrande",
                   lambda **_: datasets.DatasetDict(validation=datasets.Dataset.from_list(WINOGRANDE)))
        yield


def _tiny(family: str = "llama", n_layers: int = 6):
    config = tiny_config(family, n_layers)
    config.max_position_embeddings = 1024
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval(), tiny_tokenizer()


def _plan(model, removed: list[int]) -> PrunePlan:
    per_layer = arch.layer_parameter_counts(model)
    return PrunePlan(method="test", n_layers=len(per_layer), ops=[{"op": "remove", "layers": removed}],
                     removed_original=removed, budget={"layers": len(removed), "ratio": None},
                     layers_removed=len(removed), params_total=arch.count_parameters(model),
                     params_removed=sum(per_layer[i] for i in removed))


def assert_same(plain, engine, tasks=TASKS):
    """Every document in the same order, every choice within ATOL + RTOL |ll|, every prediction identical."""
    for task in tasks:
        assert len(plain.samples[task]) == len(engine.samples[task]) > 0
        for p, e in zip(plain.samples[task], engine.samples[task], strict=True):
            assert p["doc_id"] == e["doc_id"] and p["n_tokens"] == e["n_tokens"]
            assert all(abs(a - b) <= ATOL + RTOL * abs(a) for a, b in zip(p["loglik"], e["loglik"], strict=True))
            assert p.get("acc") == e.get("acc") and p.get("acc_norm") == e.get("acc_norm")
            assert p["is_greedy"] == e["is_greedy"]
        assert plain.tasks[task].score == engine.tasks[task].score


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_engine_matches_plain_lm_eval_on_an_exported_pruned_model(toy_data, family, tmp_path):
    dense, tok = _tiny(family)
    states = BoundaryStates()
    kw = dict(batch_size=4)
    plain_dense = evaluate_accuracy(dense, tok, TASKS, engine="lm-eval", **kw)
    engine_dense = evaluate_accuracy(dense, tok, TASKS, engine="prefix",
                                     reuse=Reuse(states, 6, tuple(bisection_order(6))), **kw)
    assert_same(plain_dense, engine_dense)
    assert set(states.layers) == set(range(1, 6))  # every boundary fits the default budget here

    pruned = copy.deepcopy(dense)
    plan = _plan(dense, [3, 4])
    arch.remove_layers(pruned, [3, 4])
    out = save_pruned(pruned, tok, plan, tmp_path / "pruned", base_model="tiny")
    exported = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    shared = shared_prefix(dense, exported, first_changed_layer(plan))
    assert shared == 3
    plain = evaluate_accuracy(exported, tok, TASKS, engine="lm-eval", **kw)
    engine = evaluate_accuracy(exported, tok, TASKS, engine="prefix", reuse=Reuse(states, shared, (shared,)), **kw)
    assert_same(plain, engine)
    stats = engine.engine_stats
    assert stats["fallback"] is None and stats["checked_requests"] > 0
    assert set(stats["start_boundaries"]) == {"3"}     # every row started at the dense boundary
    # ARC's 4 choices share one row: fewer rows than requests
    assert stats["rows"] < stats["requests"]


def test_left_truncation_and_one_row_per_request_match(toy_data):
    """Contexts cut from the left at max_length (HFLM's rule) and a model that shares no layer."""
    dense, tok = _tiny()
    kw = dict(batch_size=3, max_length=10)   # HFLM asserts continuations fit: ARC's are short
    plain = evaluate_accuracy(dense, tok, ["arc_easy"], engine="lm-eval", **kw)
    engine = evaluate_accuracy(dense, tok, ["arc_easy"], engine="prefix", **kw)
    assert_same(plain, engine, ["arc_easy"])
    # truncated prefixes differ per choice, so some rows hold fewer choices than a document has
    assert engine.engine_stats["rows"] > len(ARC)


def test_wrong_states_are_caught_and_lm_eval_scores_instead(toy_data):
    """States from a different model: the first-batch check sees it and HFLM's path takes over."""
    dense, tok = _tiny()
    states = BoundaryStates()
    evaluate_accuracy(dense, tok, ["arc_easy"], batch_size=4, engine="prefix", reuse=Reuse(states, 6, (4,)))
    other, _ = _tiny()
    with torch.no_grad():
        for p in arch.decoder_layers(other)[0].parameters():
            p.mul_(3.0)
    plain = evaluate_accuracy(other, tok, ["arc_easy"], batch_size=4, engine="lm-eval")
    engine = evaluate_accuracy(other, tok, ["arc_easy"], batch_size=4, engine="prefix", reuse=Reuse(states, 4))
    assert engine.engine_stats["fallback"] is not None
    assert_same(plain, engine, ["arc_easy"])
    assert shared_prefix(dense, other, 4) == 0   # what the session would have derived instead


def test_state_budget_is_a_bound(toy_data):
    dense, tok = _tiny()
    one_boundary = None
    states = BoundaryStates(max_bytes=1)
    r = evaluate_accuracy(dense, tok, ["piqa"], batch_size=4, engine="prefix", reuse=Reuse(states, 6, (2, 4)))
    assert states.nbytes == 0 and not states.layers and r.engine_stats["recorded"] == []
    states = BoundaryStates()
    evaluate_accuracy(dense, tok, ["piqa"], batch_size=4, engine="prefix", reuse=Reuse(states, 6, (2,)))
    one_boundary = states.nbytes
    assert one_boundary == sum(t.numel() * t.element_size() for t in states.layers[2].values())
    states = BoundaryStates(max_bytes=int(one_boundary * 1.5))
    evaluate_accuracy(dense, tok, ["piqa"], batch_size=4, engine="prefix", reuse=Reuse(states, 6, (2, 4)))
    assert list(states.layers) == [2] and states.nbytes <= states.max_bytes


def test_first_changed_layer_from_plans():
    plan = PrunePlan("x", 30, [{"op": "remove", "layers": [22, 23, 29]}], [22, 23, 29], {}, 3, 1, 1)
    assert first_changed_layer(plan) == 22
    plan.ops = [{"op": "merge", "base": 20, "others": [21, 22], "rule": "laco"},
                {"op": "merge", "base": 14, "others": [15], "rule": "laco"}]
    assert first_changed_layer(plan) == 14
    plan.ops = [{"op": "replace", "start": 11, "stop": 19, "module": "m"}]
    assert first_changed_layer(plan) == 11
    plan.ops = []
    assert first_changed_layer(plan) == 30
    assert bisection_order(8)[:3] == [4, 2, 6] and sorted(bisection_order(8)) == list(range(1, 8))


def test_seeded_subsets_are_recorded_and_reproducible(toy_data):
    dense, tok = _tiny(n_layers=2)
    a = evaluate_accuracy(dense, tok, ["piqa"], batch_size=4, limit=3, subset="random", subset_seed=1,
                          engine="prefix")
    b = evaluate_accuracy(dense, tok, ["piqa"], batch_size=4, limit=3, subset="random", subset_seed=1,
                          engine="prefix")
    ids = [s["doc_id"] for s in a.samples["piqa"]]
    assert ids == [s["doc_id"] for s in b.samples["piqa"]] and len(ids) == 3 and ids == sorted(ids)
    seeds = {tuple(s["doc_id"] for s in evaluate_accuracy(
        dense, tok, ["piqa"], batch_size=4, limit=3, subset="random", subset_seed=seed).samples["piqa"])
        for seed in range(6)}
    assert len(seeds) > 1
    first = evaluate_accuracy(dense, tok, ["piqa"], batch_size=4, limit=3, subset="first")
    assert [s["doc_id"] for s in first.samples["piqa"]] == [0, 1, 2]
    assert (a.subset, a.subset_seed, first.subset, first.subset_seed) == ("random", 1, "first", None)
    assert a.settings()["subset_seed"] == 1 and a.tasks["piqa"].n == 3


def test_a_first_batch_that_fails_falls_back_to_lm_eval(toy_data, monkeypatch):
    """A model the 4-D mask path does not fit fails on the first batch: HFLM's path scores instead and
    what the call stored is dropped."""
    from bench.evaluate.engine import prefix_lm_class

    dense, tok = _tiny()

    def broken(self, groups, record):
        raise TypeError("attention_mask of an unexpected kind")

    monkeypatch.setattr(prefix_lm_class(), "_score", broken)
    states = BoundaryStates()
    plain = evaluate_accuracy(dense, tok, ["arc_easy"], batch_size=4, engine="lm-eval")
    engine = evaluate_accuracy(dense, tok, ["arc_easy"], batch_size=4, engine="prefix", reuse=Reuse(states, 6, (3,)))
    assert "first batch failed" in engine.engine_stats["fallback"]
    assert states.nbytes == 0 and not states.layers
    assert_same(plain, engine, ["arc_easy"])


def test_batches_cap_rows_tokens_and_attention():
    """Rows are packed longest first under every cap; a row longer than the attention cap still runs alone."""
    from bench.evaluate.engine import packing

    def group(length, tag):
        return packing.Group(prefix=(tag,) * (length - 1), blocks=[(7, 8)])

    groups = [group(n, t) for t, n in enumerate([10, 10, 10, 10, 40, 40, 100])]
    by_rows = packing.batches(groups, rows=3)
    assert [[g.length for g in b] for b in by_rows] == [[100, 40, 40], [10, 10, 10], [10]]
    by_tokens = packing.batches(groups, rows=8, max_tokens=100)
    assert [[g.length for g in b] for b in by_tokens] == [[100], [40, 40], [10, 10, 10, 10]]
    # 2 rows of 40 tokens hold 2 x 40² = 3,200 query-key pairs: over a cap of 3,000, so one row a batch
    by_attention = packing.batches(groups, rows=8, max_attention=3000)
    assert [[g.length for g in b] for b in by_attention] == [[100], [40], [40], [10, 10, 10, 10]]
    assert sorted(g.key for b in by_attention for g in b) == sorted(g.key for g in groups)


def test_engine_chunks_change_no_loglikelihood(toy_data, monkeypatch):
    """The LM head in chunks of a few positions and one row per batch give the unchunked numbers."""
    from bench.evaluate.engine import lm as engine_lm

    model, tok = _tiny()
    kwargs = dict(batch_size=4, limit=6, engine="prefix", score_contexts=True, keep_lm_eval_samples=False,
                  data="local")
    plain = evaluate_accuracy(model, tok, ["arc_easy"], **kwargs)
    monkeypatch.setattr(engine_lm, "HEAD_POSITIONS", 3)
    monkeypatch.setattr(engine_lm, "MAX_BATCH_ATTENTION", 1)
    chunked = evaluate_accuracy(model, tok, ["arc_easy"], **kwargs)
    for a, b in zip(plain.samples["arc_easy"], chunked.samples["arc_easy"], strict=True):
        assert a["loglik"] == pytest.approx(b["loglik"], abs=1e-5)
        assert a["context_loglik"] == pytest.approx(b["context_loglik"], abs=1e-5)


def test_requests_sharing_only_a_start_token_pack_into_bounded_rows():
    """Contexts scored on their own all share the one-token prefix: they fill rows of at most max_row tokens
    (one block each at least), not one row of every context; a document's choices still share one row."""
    from bench.evaluate.engine import packing

    contexts = [(None, [1], list(range(10 + i, 40 + i))) for i in range(10)]  # 30-token continuations
    rows = packing.group_requests(contexts, max_length=512, max_row=100)
    assert [len(g.blocks) for g in rows] == [3, 3, 3, 1] and all(g.length <= 100 for g in rows)
    assert sorted(i for g in rows for i in g.requests) == list(range(10))
    assert len(packing.group_requests(contexts, max_length=512)) == 1
    choices = [(None, [5, 6, 7], [8]), (None, [5, 6, 7], [9]), (None, [5, 6, 7], [8])]
    (row,) = packing.group_requests(choices, max_length=512, max_row=4)
    assert row.blocks == [(8,), (9,)] and row.members == [0, 1, 0]


def test_states_on_disk_serve_a_later_process(toy_data, tmp_path):
    """`DiskBoundaryStates`: the dense model's states written by one evaluation are found by a fresh instance
    on the same folder (a later run), a pruned model starts from them with lm-eval's numbers, a budget too
    small stores nothing, a check that fails removes what the call wrote, and a damaged file is removed and
    its rows scored from the embeddings."""
    from bench.evaluate.engine.disk_states import DiskBoundaryStates, states_folder

    dense, tok = _tiny()
    folder = states_folder(tmp_path / "states", {"weights": "tiny", "dtype": "float32"})
    assert (folder / "identity.json").exists() and states_folder(tmp_path / "states", {"weights": "tiny",
                                                                                      "dtype": "float32"}) == folder
    writer = DiskBoundaryStates(folder)
    dense_eval = evaluate_accuracy(dense, tok, TASKS, batch_size=4, engine="prefix", reuse=Reuse(writer, 6, (3,)))
    assert writer.nbytes > 0 and set(writer.layers) == {3}
    assert sorted(dense_eval.engine_stats["recorded"]) == [3]
    files = sorted((folder / "b3").glob("*.safetensors"))
    assert len(files) == len(writer.layers[3]) and not list(folder.rglob("*.tmp"))

    reader = DiskBoundaryStates(folder)          # what a later run sees
    assert reader.layers == writer.layers and reader.nbytes == sum(f.stat().st_size for f in files)
    pruned = copy.deepcopy(dense)
    arch.remove_layers(pruned, [3, 4])
    plain = evaluate_accuracy(pruned, tok, TASKS, batch_size=4, engine="lm-eval")
    engine = evaluate_accuracy(pruned, tok, TASKS, batch_size=4, engine="prefix", reuse=Reuse(reader, 3, (3,)))
    assert_same(plain, engine)
    assert set(engine.engine_stats["start_boundaries"]) == {"3"} and engine.engine_stats["recorded"] == []

    full = DiskBoundaryStates(tmp_path / "full", max_bytes=1)
    evaluate_accuracy(dense, tok, ["piqa"], batch_size=4, engine="prefix", reuse=Reuse(full, 6, (2,)))
    assert not full.layers and not (tmp_path / "full" / "b2").exists()

    other, _ = _tiny()                           # states from another model fail the first-batch check ...
    with torch.no_grad():
        for p in arch.decoder_layers(other)[0].parameters():
            p.mul_(3.0)
    wrong = DiskBoundaryStates(folder)
    engine = evaluate_accuracy(other, tok, ["piqa"], batch_size=4, engine="prefix", reuse=Reuse(wrong, 4, (4,)))
    assert engine.engine_stats["fallback"] is not None
    assert 4 not in DiskBoundaryStates(folder).layers   # ... and what that call wrote is gone

    files[0].write_bytes(b"damaged")
    again = DiskBoundaryStates(folder)
    engine = evaluate_accuracy(pruned, tok, TASKS, batch_size=4, engine="prefix", reuse=Reuse(again, 3))
    assert not files[0].exists()
    assert_same(plain, engine)


def test_a_run_keeps_engine_states_in_its_store(toy_data, tiny_env, tmp_path):
    """`bench run --engine-states store`: the dense cell stores boundaries under <store>/states/, the pruned cell
    starts from its own; a second run (a new process's view: nothing in memory, the dense cell not computed
    again) of that cell starts there too and gets the same per-sample log-likelihoods."""
    import json

    from bench.cli import main

    store = tmp_path / "store"
    cfg = tiny_env.config(tmp_path / "run.yaml", methods=["last"], layers=[1],
                          eval={"tasks": ["piqa"], "perplexity": None, "engine": "prefix"})

    def run(*extra):
        assert main(["run", "--config", str(cfg), "--store", str(store), "--plain", "--no-report",
                     "--engine-states", "store", *extra]) == 0
        (key,) = [json.loads(p.read_text())["key"] for p in store.glob("cells/*/record.json")
                  if json.loads(p.read_text())["cell"]["kind"] != "dense"]
        accuracy = json.loads((store / "cells" / key / "accuracy.json").read_text())
        rows = (store / "cells" / key / "samples.jsonl").read_text().splitlines()
        return accuracy["engine_stats"]["piqa"], [json.loads(r)["loglik"] for r in rows]

    first, ll = run()
    (dense,) = [json.loads(p.read_text()) for p in store.glob("cells/*/record.json")
                if json.loads(p.read_text())["cell"]["kind"] == "dense"]
    assert 0 < dense["timings"]["scoring_piqa_s"] < dense["timings"]["accuracy_piqa_s"]   # for the estimate
    (folder,) = (store / "states").iterdir()
    assert json.loads((folder / "identity.json").read_text())["batch_size"] == 2
    assert (folder / "b3").is_dir() and set(first["start_boundaries"]) == {"3"}   # the dense cell stored it
    second, ll_again = run("--force", "--methods", "last")
    assert set(second["start_boundaries"]) == {"3"} and ll_again == ll
