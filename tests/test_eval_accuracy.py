"""Accuracy through lm-eval's built-in task YAMLs on local data, with a tiny random model.

These tests swap in a few synthetic documents (through the same `custom_dataset` hook the real data
uses), so nothing is downloaded; tests/test_data_real.py runs the real data (marker `real`).
"""

from __future__ import annotations

import json
import math

import datasets
import pytest
import torch
from tiny import tiny_model

from bench.data import fetch, loaders
from bench.evaluate.answer_agreement import stability_of
from bench.evaluate.multiple_choice import AccuracyResult, cached_accuracy, evaluate_accuracy

PIQA = [
    {"goal": "To boil water,", "sol1": "put it in a pot on the stove.", "sol2": "put it in the freezer.", "label": 0},
    {"goal": "How do you dry a wet towel?", "sol1": "Soak it in water.", "sol2": "Hang it in the sun.", "label": 1},
    {"goal": "To open a jar,", "sol1": "twist the lid.", "sol2": "paint the lid blue.", "label": 0},
    {"goal": "Keep bread fresh", "sol1": "leave it open on the table", "sol2": "store it in a closed bag", "label": 1},
]
WINOGRANDE = [
    {"sentence": "The trophy did not fit in the case because the _ was too big.", "option1": "trophy",
     "option2": "case", "answer": "1"},
    {"sentence": "The cat slept on the mat because the _ was warm.", "option1": "cat", "option2": "mat",
     "answer": "2"},
]


@pytest.fixture(scope="module")
def toy_data():
    """Synthetic documents in the real schemas, served through the loaders lm-eval calls."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fetch, "ensure", lambda name, force=False: None)
        mp.setattr(loaders, "piqa", lambda **_: datasets.DatasetDict(validation=datasets.Dataset.from_list(PIQA)))
        mp.setattr(loaders, "winogrande",
                   lambda **_: datasets.DatasetDict(validation=datasets.Dataset.from_list(WINOGRANDE)))
        yield


@pytest.fixture(scope="module")
def tiny():
    return tiny_model("llama")


@pytest.fixture(scope="module")
def piqa_result(toy_data, tiny):
    model, tok = tiny
    return evaluate_accuracy(model, tok, ["piqa", "winogrande"], batch_size=4, limit=3,
                             identity={"model": "tiny-llama", "method": "dense"})


def _loglik(model, tok, context: str, continuation: str) -> tuple[float, int]:
    """log p(continuation | context), tokenized the way lm-eval does (whole minus context)."""
    whole = tok(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tok(context, add_special_tokens=False)["input_ids"]
    cont = whole[len(ctx):]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([whole])).logits[0].double(), -1)
    return sum(logp[len(ctx) - 1 + i, t].item() for i, t in enumerate(cont)), len(cont)


def test_scores_and_provenance(piqa_result):
    r = piqa_result
    piqa = r.tasks["piqa"]
    assert (piqa.split, piqa.n, piqa.n_total, piqa.shots, piqa.metric) == ("validation", 3, 4, 0, "acc_norm")
    assert piqa.acc in (0, 1 / 3, 2 / 3, 1) and piqa.acc_norm is not None and piqa.acc_stderr is not None
    assert r.tasks["winogrande"].n == 2 and r.tasks["winogrande"].acc_norm is None
    assert r.identity == {"model": "tiny-llama", "method": "dense"}
    assert (r.batch_size, r.limit, r.num_fewshot, r.data) == (4, 3, 0, "local")
    assert r.provenance["lm-eval_version"] == "0.4.13" and r.provenance["dtype"] == "float32"
    assert r.wall_s > 0 and not math.isnan(r.average) and r.average == r.mean_score()
    assert r.task_versions == r.provenance["task_versions"] and r.tasks["piqa"].score == piqa.acc_norm


def test_sample_records_match_a_hand_computation(piqa_result, tiny):
    model, tok = tiny
    records = piqa_result.samples["piqa"]
    assert [s["doc_id"] for s in records] == [0, 1, 2]
    for rec, doc in zip(records, PIQA, strict=False):
        context = f"Question: {doc['goal']}\nAnswer:"
        expected = [_loglik(model, tok, context, " " + doc[k]) for k in ("sol1", "sol2")]
        assert rec["loglik"] == pytest.approx([e[0] for e in expected], abs=1e-3)
        assert rec["n_tokens"] == [e[1] for e in expected]
        assert rec["gold"] == doc["label"]
        pred = max(range(2), key=lambda j: rec["loglik"][j])
        assert rec["acc"] == float(pred == doc["label"])
        assert len(rec["is_greedy"]) == 2
    # winogrande: gold comes from doc_to_text (lm-eval's multiple_input), not the shared target
    assert [s["gold"] for s in piqa_result.samples["winogrande"]] == [0, 1]


def test_lm_eval_per_sample_log_is_kept(piqa_result):
    raw = piqa_result.lm_eval_samples["piqa"]
    assert len(raw) == 3 and {"resps", "filtered_resps", "arguments", "doc"} <= set(raw[0])


def test_result_is_json_round_trip(piqa_result):
    d = json.loads(json.dumps(piqa_result.artifact()))
    assert "lm_eval_samples" not in d and "score" not in d["tasks"]["piqa"] and d["tasks"]["piqa"]["task"] == "piqa"
    back = AccuracyResult.from_artifact(d)
    assert back.tasks == piqa_result.tasks and back.samples == piqa_result.samples
    assert back.to_dict() == piqa_result.to_dict()
    assert "lm_eval_samples" in piqa_result.artifact(raw=True)


def test_the_record_part_keeps_no_runtime_data(piqa_result):
    """The result is the record part: what the record stores, the per-sample records and provenance left out."""
    part = json.loads(json.dumps(piqa_result.to_dict()))
    assert not {"samples", "lm_eval_samples", "provenance", "identity", "engine_stats", "max_length"} & set(part)
    assert "task" not in part["tasks"]["piqa"] and part["tasks"]["piqa"]["limit"] == 3
    assert AccuracyResult.from_dict(part).to_dict() == part


def test_same_model_is_perfectly_stable_and_dense_is_cached(toy_data, tiny, tmp_path):
    model, tok = tiny
    calls = []

    def dense():
        calls.append(1)
        return evaluate_accuracy(model, tok, ["piqa"], batch_size=2)

    path = tmp_path / "dense.json"
    first = cached_accuracy(path, dense, tasks=["piqa"], settings={"batch_size": 2})
    again = cached_accuracy(path, dense, tasks=["piqa"], settings={"batch_size": 2})
    assert len(calls) == 1 and again.tasks == first.tasks
    other, _ = tiny_model("llama", seed=1)
    pruned = evaluate_accuracy(other, tok, ["piqa"], batch_size=2)
    assert stability_of(again, first).mean == pytest.approx(1.0)
    assert 0.0 <= stability_of(again, pruned).mean <= 1.0
    with pytest.raises(ValueError, match="evaluated differently"):
        stability_of(again, evaluate_accuracy(model, tok, ["piqa"], batch_size=2, limit=2))


def test_batch_size_reaches_lm_eval(toy_data, tiny, monkeypatch):
    """A model object passed to HFLM runs at batch size 1 unless told otherwise (lm-eval's trap)."""
    from bench.evaluate import multiple_choice

    seen = {}
    make_lm = multiple_choice.make_lm

    def spy(*args, **kwargs):
        lm = make_lm(*args, **kwargs)
        seen["batch_size"] = lm.batch_size
        return lm

    monkeypatch.setattr(multiple_choice, "make_lm", spy)
    model, tok = tiny
    evaluate_accuracy(model, tok, ["piqa"], batch_size=3, limit=1)
    assert seen["batch_size"] == 3


def test_merged_results_keep_every_tasks_version():
    """Task-by-task evaluations merged into one record keep each task's provenance, not the first's only."""
    from bench.evaluate.multiple_choice import AccuracyResult, TaskScore, merge_results

    def part(task, version, acc):
        score = TaskScore.scored(task=task, split="validation", n=10, n_total=100, metric="acc", shots=0,
                                 version=version, acc=acc, limit=10)
        return AccuracyResult(tasks={task: score}, samples={task: [{"doc": 0}]}, batch_size=8, limit=10,
                              num_fewshot=0, data="local", softmax_dtype="float32", bootstrap_iters=1000, wall_s=1.5,
                              provenance={"task_versions": {task: version}, "lm_eval_version": "0.4.13"})

    parts = [part("piqa", "1.0", 0.6), part("arc_easy", "2.0", 0.5), part("winogrande", "1.0", 0.55)]
    merged = merge_results(parts)
    assert merged.provenance["task_versions"] == {"piqa": "1.0", "arc_easy": "2.0", "winogrande": "1.0"}
    assert list(merged.tasks) == ["piqa", "arc_easy", "winogrande"] and merged.wall_s == pytest.approx(4.5)
    assert merged.task_versions == merged.provenance["task_versions"] and merged.average == pytest.approx(0.55)
    assert parts[0].provenance["task_versions"] == {"piqa": "1.0"}  # the parts are left as they were
    other = part("boolq", "2.0", 0.7)
    other.batch_size = 16
    with pytest.raises(ValueError, match="different settings"):
        merge_results([parts[0], other])
