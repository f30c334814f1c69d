"""Adding a method is one file: the toy method below (it removes the middle layers, with one parameter) is
declared here, registered by `@register` from its own class attributes, and then listed by `bench ls
methods`, pruned and exported by `bench prune`, and computed as a cell by `bench run`."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

import methods
from bench.cli import main
from methods.base import Budget, Pruner


class MiddleLayers(Pruner):
    name = "toy_middle"
    title = "Middle layers (toy)"
    paper = ""
    needs_calibration = False

    @dataclass(frozen=True)
    class Params(Pruner.Params):
        offset: int = 0  # shift the removed span this many layers towards the output

    def plan(self, model, calib, budget: Budget):
        from bench.models import arch

        n = arch.num_layers(model)
        k = budget.to_layers(arch.layer_parameter_counts(model), arch.count_parameters(model))
        start = min(max(0, (n - k) // 2 + self.params.offset), n - k)
        return self.removal_plan(model, budget, list(range(start, start + k)), {"start": start})


@pytest.fixture
def toy_method():
    methods.register(MiddleLayers)  # what `@register` does when a methods/ module is imported
    try:
        yield "toy_middle"
    finally:
        methods.unregister("toy_middle")


def test_a_toy_method_is_listed_pruned_exported_and_run(toy_method, tiny_env, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["ls", "methods", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["toy_middle"] == {"name": "toy_middle", "title": "Middle layers (toy)", "paper": "-",
                                  "needs calibration": "no", "trains": "no", "from": "module test_extend_method"}

    out = tmp_path / "pruned"
    assert main(["prune", "--model", str(tiny_env.model), "--method", "toy_middle", "--layers", "2",
                 "--param", "offset=1", "--device", "cpu", "--dtype", "float32", "--out", str(out)]) == 0
    plan = json.loads((out / "plan.json").read_text())
    assert plan["method"] == "toy_middle" and plan["removed_original"] == [2, 3] and plan["params"] == {"offset": 1}
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(out).config.num_hidden_layers == 2

    store = tmp_path / "store"
    cfg = tiny_env.config(tmp_path / "run.yaml", methods=["toy_middle"])
    assert main(["run", "--config", str(cfg), "--store", str(store), "--plain", "--no-report"]) == 0
    records = [json.loads(p.read_text()) for p in store.glob("cells/*/record.json")]
    (cell,) = [r for r in records if r["cell"]["method"] == "toy_middle"]
    assert cell["status"] == "ok" and cell["pruning"]["removed_layers"] == [1] and cell["cell"]["params"] == {"offset": 0}
