"""`bench regress`: silent on identical reruns, fires on a planted 5-point drop, reports both directions."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import datasets
import pytest
import test_runner_fixtures as fx
from fixtures import report_store

from bench.cli import main
from bench.results.regress import Tolerances, build_baseline, check_metric, compare, load_baseline

ENTRY = {"model": "m", "method": "shortgpt", "budget": {"layers": None, "ratio": 0.25}}
SHORTGPT_25 = ("smollm2-135m", "shortgpt", 0.25)
tiny_env = fx.tiny_env  # a shared fixture


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("regress") / "store"
    report_store.build(root)
    return root


@pytest.fixture(scope="module")
def baseline(store, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("baseline") / "baseline.json"
    assert main(["regress", "--update-baseline", "--baseline", str(path), "--store", str(store)]) == 0
    return path


def _cell_dir(copy: Path, which: tuple[str, str, float]) -> Path:
    hits = []
    for path in sorted(copy.glob("cells/*/record.json")):
        c = json.loads(path.read_text())["cell"]
        if (c["model"], c["method"], (c["budget"] or {}).get("ratio")) == which and c["seed"] == 0:
            hits.append(path.parent)
    assert len(hits) == 1
    return hits[0]


def _copy_with(store: Path, tmp_path: Path, which, change=None, change_samples=None) -> Path:
    """A copy of the store in which the record (and/or the per-sample records) of one cell are changed."""
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    folder = _cell_dir(copy, which)
    if change is not None:
        record = json.loads((folder / "record.json").read_text())
        change(record)
        (folder / "record.json").write_text(json.dumps(record))
    if change_samples is not None:
        rows = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
        change_samples(rows)
        (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        record = json.loads((folder / "record.json").read_text())
        if "artifacts" in record:  # as a run that wrote these samples would list them (else: a damaged file)
            import hashlib

            data = (folder / "samples.jsonl").read_bytes()
            record["artifacts"]["samples.jsonl"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            (folder / "record.json").write_text(json.dumps(record))
    return copy


def _flip(rows, task: str, n: int, to: float) -> None:
    """Flip n documents of `task` that are now (1 - to) to `to`, moving their log-likelihoods accordingly
    (the model now prefers another choice), as a real change would."""
    done = 0
    for r in rows:
        if r["task"] == task and r["acc_norm"] == 1 - to and done < n:
            r["acc"] = r["acc_norm"] = to
            r["loglik"] = [x - 2.0 if j == 0 else x for j, x in enumerate(r["loglik"])]
            done += 1
    assert done == n


def test_own_baseline_passes(store, baseline, capsys):
    assert main(["regress", "--baseline", str(baseline), "--store", str(store)]) == 0
    assert "no changes" in capsys.readouterr().out


def test_a_planted_five_point_drop_in_one_task_fires(store, baseline, tmp_path, capsys):
    # piqa has 40 documents here: 2 flipped right -> wrong is -5.0 points
    copy = _copy_with(store, tmp_path, SHORTGPT_25, change_samples=lambda rows: _flip(rows, "piqa", 2, 0.0))
    assert main(["regress", "--baseline", str(baseline), "--store", str(copy)]) == 1
    out = capsys.readouterr().out
    assert "2 right→wrong, 0 wrong→right (-5.0 points)" in out and "worse" in out
    findings = compare(load_baseline(baseline), copy).findings
    assert {(f.metric, f.kind) for f in findings} == {("answers/piqa", "flips"), ("loglik/piqa", "drift")}


def test_an_unexpected_improvement_is_reported_too(store, baseline, tmp_path):
    copy = _copy_with(store, tmp_path, SHORTGPT_25, change_samples=lambda rows: _flip(rows, "arc_easy", 1, 1.0))
    flips = [f for f in compare(load_baseline(baseline), copy).findings if f.kind == "flips"]
    assert [(f.metric, f.direction) for f in flips] == [("answers/arc_easy", "better")]


def test_loglik_drift_beyond_float_noise(store, baseline, tmp_path):
    def nudge(by):
        def change(rows):
            rows[0]["loglik"][0] += by
        return change

    small = _copy_with(store, tmp_path / "a", SHORTGPT_25, change_samples=nudge(0.004))
    assert compare(load_baseline(baseline), small).findings == []
    large = _copy_with(store, tmp_path / "b", SHORTGPT_25, change_samples=nudge(0.05))
    (f,) = compare(load_baseline(baseline), large).findings
    assert f.kind == "drift" and "1 of 40 documents" in f.change


def test_a_flip_at_a_float_tie_is_not_reported_but_a_flip_without_movement_is(store, baseline, tmp_path):
    def tie(rows):
        rows[0]["acc"] = rows[0]["acc_norm"] = 1 - rows[0]["acc_norm"]
        rows[0]["loglik"][0] += 0.001

    assert compare(load_baseline(baseline), _copy_with(store, tmp_path / "a", SHORTGPT_25, change_samples=tie)).findings == []

    def rescored(rows):
        rows[0]["acc"] = rows[0]["acc_norm"] = 1 - rows[0]["acc_norm"]

    (f,) = compare(load_baseline(baseline), _copy_with(store, tmp_path / "b", SHORTGPT_25, change_samples=rescored)).findings
    assert f.kind == "flips"


def test_perplexity_in_both_directions_and_skip(store, baseline, tmp_path):
    def worse(record):
        record["perplexity"][0]["perplexity"] *= 1.05   # nll + 0.049 nats

    copy = _copy_with(store, tmp_path, SHORTGPT_25, worse)
    args = ["regress", "--baseline", str(baseline), "--store", str(copy)]
    assert main(args) == 1
    assert main([*args, "--nll", "0.06"]) == 0
    assert main([*args, "--skip", "perplexity"]) == 0
    better = _copy_with(store, tmp_path / "x", SHORTGPT_25, lambda r: r["perplexity"][0].update(
        perplexity=r["perplexity"][0]["perplexity"] / 1.05))
    (f,) = compare(load_baseline(baseline), better).findings
    assert f.direction == "better" and f.metric == "perplexity/C4-sample"


def test_failed_missing_and_changed_cells(store, baseline, tmp_path):
    def fail(record):
        record.update(status="failed", error={"type": "RuntimeError", "message": "CUDA out of memory"})

    copy = _copy_with(store, tmp_path, SHORTGPT_25, fail)
    kinds = {f.kind for f in compare(load_baseline(baseline), copy).findings}
    assert kinds == {"failed"}
    shutil.rmtree(next(p.parent for p in copy.glob("cells/*/record.json")
                       if json.loads(p.read_text())["status"] == "failed"))
    findings = compare(load_baseline(baseline), copy).findings
    assert [f.kind for f in findings] == ["missing"]
    assert compare(load_baseline(baseline), copy, allow_missing=True).findings == []

    def relimit(record):
        record["accuracy"]["limit"] = 100

    other = _copy_with(store, tmp_path / "x", SHORTGPT_25, relimit)
    assert [f.kind for f in compare(load_baseline(baseline), other).findings] == ["settings"]


@pytest.mark.parametrize(("metric", "base", "cur", "direction"), [
    ("accuracy/piqa", {"value": 0.600}, {"value": 0.585}, "worse"),     # cells without samples: points rule
    ("accuracy/piqa", {"value": 0.600}, {"value": 0.605}, None),
    ("accuracy/avg", {"value": 0.600}, {"value": 0.700}, "better"),
    # perplexity: its log (the mean NLL per token) within 0.01 nats
    ("perplexity/C4-sample", {"value": 20.0}, {"value": 20.0 * math.exp(0.008)}, None),
    ("perplexity/C4-sample", {"value": 20.0}, {"value": 20.0 * math.exp(0.02)}, "worse"),
    ("perplexity/C4-sample", {"value": 20.0}, {"value": 20.0 * math.exp(-0.02)}, "better"),
    # the paired speed-up's interval: overlapping intervals are noise, disjoint ones are a change
    ("latency/decode_speedup", {"value": 1.30, "low": 1.20, "high": 1.40},
     {"value": 1.15, "low": 1.05, "high": 1.25}, None),
    ("latency/decode_speedup", {"value": 1.30, "low": 1.20, "high": 1.40},
     {"value": 1.05, "low": 1.00, "high": 1.10}, "worse"),
    ("latency/decode_speedup", {"value": 1.30}, {"value": 1.05}, "worse"),   # no intervals: 15 % rule
    ("latency/decode_speedup", {"value": 1.30}, {"value": 1.20}, None),
])
def test_tolerances(metric, base, cur, direction):
    finding = check_metric(ENTRY, metric, base, cur, Tolerances())
    assert (finding.direction if finding else None) == direction


def test_baseline_is_deterministic_and_one_line_per_cell(store, baseline, tmp_path):
    again = tmp_path / "b.json"
    assert main(["regress", "--update-baseline", "--baseline", str(again), "--store", str(store)]) == 0
    assert again.read_bytes() == baseline.read_bytes()
    assert len(again.read_text().splitlines()) == 15 + 2
    data = build_baseline(store)
    assert data["date"] == "2026-01-10T09:57:00+00:00" and len(data["cells"]) == 15  # the failed cell has none
    cell = next(c for c in data["cells"] if (c["model"], c["method"]) == SHORTGPT_25[:2]
                and c["budget"]["ratio"] == 0.25)
    assert set(cell["answers"]) == {"arc_easy", "piqa", "winogrande"}
    assert len(cell["answers"]["piqa"]["correct"]) == 40


def test_missing_baseline_is_a_user_error(store, tmp_path, capsys):
    assert main(["regress", "--baseline", str(tmp_path / "none.json"), "--store", str(store)]) == 2
    assert "--update-baseline" in capsys.readouterr().err


PIQA = [{"goal": f"Goal number {i}:", "sol1": f"do the first thing {i}.", "sol2": f"do another thing {i * 3}.",
         "label": i % 2} for i in range(6)]


@pytest.mark.slow
def test_two_identical_reruns_of_a_tiny_model_on_local_tasks_are_silent(tiny_env, tmp_path, monkeypatch):
    """Two runs of the same matrix (tiny model, synthetic PIQA through lm-eval): baseline from the first, the
    second compared with it: no change at all. Then a planted 5-point drop in the second fires."""
    from bench.data import fetch, loaders
    from bench.run import config, runner

    monkeypatch.setattr(fetch, "ensure", lambda name, force=False: None)
    monkeypatch.setattr(loaders, "piqa", lambda **_: datasets.DatasetDict(validation=datasets.Dataset.from_list(PIQA)))
    stores = []
    for run in ("a", "b"):
        spec = config.from_yaml(tiny_env.config(tmp_path / f"{run}.yaml", methods=["shortgpt", "last"],
                                                eval={"tasks": ["piqa"], "limit": 6}))
        outcome = runner.run(dataclasses.replace(spec, store=str(tmp_path / run)))
        assert not outcome.failures
        stores.append(tmp_path / run)
    path = tmp_path / "baseline.json"
    assert main(["regress", "--update-baseline", "--baseline", str(path), "--store", str(stores[0])]) == 0
    result = compare(load_baseline(path), stores[1])
    assert result.findings == [] and result.cells == 3 and result.compared > 3
    # one document of six right -> wrong in one cell: far more than 5 points, and it fires
    folder = next(p.parent for p in stores[1].glob("cells/*/record.json")
                  if json.loads(p.read_text())["cell"]["method"] == "last")
    rows = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    metric = "acc_norm"
    target = next(r for r in rows if r[metric] == 1.0)
    target[metric] = target["acc"] = 0.0
    target["loglik"] = [x - 1.0 for x in target["loglik"]]
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    kinds = {(f.kind, f.direction) for f in compare(load_baseline(path), stores[1]).findings}
    assert ("flips", "worse") in kinds
