"""Adding a metric is one declaration and its evaluator, here in this file: the toy metric below (the dense
or pruned model's decoder layer count, a "higher is better" number) shows up in the cell record, the
leaderboard, `bench regress` and the progress line without any other file knowing it."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from bench import metrics
from bench.cli import main
from bench.core.record import Part
from bench.metrics import EvalContext, Evaluator, Measure, Metric, Outcome, RelativeChange


@dataclass
class Depth(Part):
    layers: int | None = None


class DepthEvaluator(Evaluator):
    name = "toy_depth"
    part = Depth

    def evaluate(self, ctx: EvalContext) -> Outcome:
        from bench.models import arch

        with ctx.stage("toy depth", "toy_depth_s"):
            return Outcome(Depth(layers=arch.num_layers(ctx.model)))


DEPTH = Metric(name="toy_depth", title="Decoder layers", unit="layers", direction="higher", uncertainty="none",
               read=lambda r: {"toy_depth": Measure(float(r.part("toy_depth").layers))} if r.part("toy_depth") else {},
               regress=RelativeChange(tolerance=10.0))


@pytest.fixture
def toy_metric():
    metrics.evaluator(DepthEvaluator)  # what `@evaluator` and `metric(...)` do at a module's import
    metrics.metric(DEPTH)
    try:
        yield DEPTH
    finally:
        metrics.unregister("toy_depth")


def test_a_toy_metric_reaches_record_leaderboard_regress_and_progress(toy_metric, tiny_env, tmp_path, capsys,
                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store"
    cfg = tiny_env.config(tmp_path / "run.yaml", methods=["last"])
    assert main(["run", "--config", str(cfg), "--store", str(store), "--plain"]) == 0
    err = capsys.readouterr().err
    records = {r["cell"]["method"]: r for r in (json.loads(p.read_text()) for p in store.glob("cells/*/record.json"))}
    # the record: the evaluator's typed part under its name, its stage timed
    assert records["dense"]["toy_depth"] == {"layers": 4} and records["last"]["toy_depth"] == {"layers": 3}
    assert "toy_depth_s" in records["last"]["timings"]
    # the progress line
    assert "dense: ok (" in err and "toy_depth 4.00" in err and "toy_depth 3.00" in err
    # the leaderboard: a column with the metric's direction
    page = (store / "reports" / "leaderboard.md").read_text()
    full = page.split("All measures of", 1)[1]  # the full table (the headline table comes first)
    header = next(line for line in full.splitlines() if line.startswith("| Method"))
    assert "toy_depth ↑" in header
    dense_row = next(line for line in full.splitlines() if line.startswith("| **dense**"))
    assert "| 4.00 |" in dense_row
    # bench regress: tracked in the baseline, and a drop beyond its tolerance is a regression
    baseline = tmp_path / "baseline.json"
    assert main(["regress", "--update-baseline", "--baseline", str(baseline), "--store", str(store)]) == 0
    cells = json.loads(baseline.read_text())["cells"]
    assert {c["method"]: c["metrics"]["toy_depth"]["value"] for c in cells} == {"dense": 4.0, "last": 3.0}
    assert main(["regress", "--baseline", str(baseline), "--store", str(store)]) == 0
    path = store / "cells" / records["last"]["key"] / "record.json"
    path.write_text(json.dumps({**records["last"], "toy_depth": {"layers": 2}}))
    capsys.readouterr()
    assert main(["regress", "--baseline", str(baseline), "--store", str(store)]) == 1
    out = capsys.readouterr().out
    assert "toy_depth" in out and "+50.0 %" in out  # 3 -> 2 layers: 50 % worse, higher being better
    assert main(["regress", "--baseline", str(baseline), "--store", str(store), "--skip", "toy_depth"]) == 0
