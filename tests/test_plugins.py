"""Plug-ins without forking: a pruner in a separate installed distribution (an entry point in the group
`layerprune_bench.methods`, registered by a .dist-info folder on sys.path, which is what `pip install`
leaves) and an lm-eval task YAML folder (`--include-path`) run through `bench run` in-process and with
`--executor submitit-local` (each cell a subprocess that must find both by itself), are listed by
`bench ls`, and are named in the records' provenance."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from test_runner_fixtures import subprocess_env

import methods
from bench.cli import main
from bench.data import tasks

PRUNER = '''
from dataclasses import dataclass

from methods import register
from methods.base import Budget, Pruner


@register
class DropFirst(Pruner):
    """Removes the first k layers after layer 0: a plug-in from another distribution."""

    name = "dropfirst"
    title = "Drop the first layers (plug-in)"
    paper = ""
    needs_calibration = False
    order = 900

    @dataclass(frozen=True)
    class Params:
        offset: int = 1

    def plan(self, model, calib, budget: Budget):
        from bench.models import arch

        k = budget.to_layers(arch.layer_parameter_counts(model), arch.count_parameters(model))
        return self.removal_plan(model, budget, list(range(self.params.offset, self.params.offset + k)), {})
'''

TASK = """
task: tinyqa
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""

QUESTIONS = [("What is the capital of France?", ["Paris", "Rome", "Berlin"], 0),
             ("Which tower is in Paris?", ["Big Ben", "Eiffel Tower", "Pisa"], 1),
             ("At what temperature does water boil?", ["zero degrees", "fifty degrees", "one hundred degrees"], 2),
             ("What jumps over the lazy dog?", ["a quick brown fox", "a cat", "a cow"], 0),
             ("What does layer pruning remove?", ["tokens", "whole transformer layers", "words"], 1)]


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    """site/: an installed distribution `bench-dropfirst` (package + .dist-info with its entry point);
    tasks/: an lm-eval task folder with local data."""
    root = tmp_path_factory.mktemp("plugins")
    site = root / "site"
    (site / "dropfirst_pkg").mkdir(parents=True)
    (site / "dropfirst_pkg" / "__init__.py").write_text(PRUNER)
    dist = site / "bench_dropfirst-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: bench-dropfirst\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[layerprune_bench.methods]\ndropfirst = dropfirst_pkg:DropFirst\n")
    (dist / "RECORD").write_text("")
    folder = root / "tasks"
    folder.mkdir()
    data = folder / "tinyqa.jsonl"
    data.write_text("".join(json.dumps({"question": q, "choices": c, "answer": a}) + "\n" for q, c, a in QUESTIONS))
    (folder / "tinyqa.yaml").write_text(textwrap.dedent(TASK).format(data=data))
    sys.path.insert(0, str(site))
    saved = (dict(methods._INFO), dict(tasks.TASKS), methods._scanned)
    methods._scanned = False  # read the entry points again, now that the distribution is on the path
    try:
        yield site, folder
    finally:
        sys.path.remove(str(site))
        methods._INFO.clear()
        methods._INFO.update(saved[0])
        methods._INFO.pop("dropfirst", None)
        methods._scanned = False  # the next listing reads the sources again, without the distribution
        methods._CLASSES.pop("dropfirst", None)
        tasks.TASKS.clear()
        tasks.TASKS.update(saved[1])
        sys.modules.pop("dropfirst_pkg", None)


def _config(tiny_env, tmp_path, folder, **over):
    return tiny_env.config(tmp_path / "run.yaml", methods=["DropFirst"], layers=[1], include_path=[str(folder)],
                           eval={"tasks": ["tinyqa"], "stability": True}, **over)


def _check(store, folder, executor):
    records = {r["cell"]["method"]: r for r in (json.loads(p.read_text()) for p in store.glob("cells/*/record.json"))}
    assert set(records) == {"dense", "dropfirst"}
    for record in records.values():
        assert record["status"] == "ok", record.get("error")
        assert record["accuracy"]["tasks"]["tinyqa"]["n"] == len(QUESTIONS)
        task = record["provenance"]["plugins"]["tasks"]["tinyqa"]
        assert task["include_path"] == str(folder.resolve()) and len(task["sha256"]) == 64
        assert record["provenance"]["executor"] == executor
    pruned = records["dropfirst"]
    assert pruned["pruning"]["removed_layers"] == [1]
    origin = pruned["provenance"]["plugins"]["method"]["origin"]
    assert "entry point dropfirst = dropfirst_pkg:DropFirst (bench-dropfirst 0.1.0)" == origin
    assert "tinyqa" in pruned["stability"]["per_task"]
    return records


def test_ls_lists_the_entry_point_method_and_the_include_path_task(plugin_env, capsys):
    site, folder = plugin_env
    assert main(["ls", "methods", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["dropfirst"]["from"].startswith("entry point dropfirst") and rows["shortgpt"]["from"] == "built in"
    assert main(["ls", "tasks", "--include-path", str(folder), "--json"]) == 0
    rows = {r["task"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["tinyqa"]["data source"] == f"include path {folder.resolve()}"


def test_entry_point_pruner_and_task_folder_in_process(plugin_env, tiny_env, tmp_path):
    site, folder = plugin_env
    store = tmp_path / "store"
    assert main(["run", "--config", str(_config(tiny_env, tmp_path, folder)), "--store", str(store), "--plain",
                 "--no-report"]) == 0
    _check(store, folder, "local")


def test_entry_point_pruner_and_task_folder_through_submitit_local(plugin_env, tiny_env, tmp_path, monkeypatch,
                                                                    capsys):
    site, folder = plugin_env
    env = subprocess_env()
    env["PYTHONPATH"] = f"{site}:{env['PYTHONPATH']}"  # the jobs' interpreter has the distribution installed
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store"
    cfg = _config(tiny_env, tmp_path, folder,
                  slurm={"cluster": "local", "gpus_per_cell": 0, "cpus_per_cell": 1, "time_min": 5})
    rc = main(["run", "--config", str(cfg), "--store", str(store), "--executor", "submitit-local", "--plain",
               "--no-report"])
    assert rc == 0, capsys.readouterr().err[-3000:]
    records = _check(store, folder, "submitit-local")
    assert len({r["provenance"]["pid"] for r in records.values()}) == 2  # each cell its own process


def test_include_path_pruner_file_is_listed_and_runs(tiny_env, tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "dropsecond.py").write_text(PRUNER.replace('"dropfirst"', '"dropsecond"')
                                          .replace("class DropFirst", "class DropSecond")
                                          .replace("offset: int = 1", "offset: int = 2"))
    try:
        assert main(["ls", "methods", "--include-path", str(folder), "--json"]) == 0
        rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
        assert rows["dropsecond"]["from"] == f"include path {(folder / 'dropsecond.py').resolve()}"
        cfg = tiny_env.config(tmp_path / "run.yaml", methods=["dropsecond"], layers=[1], include_path=[str(folder)])
        store = tmp_path / "store"
        assert main(["run", "--config", str(cfg), "--store", str(store), "--plain", "--no-report"]) == 0
        (pruned,) = [json.loads(p.read_text()) for p in store.glob("cells/*/record.json")
                     if json.loads(p.read_text())["cell"]["method"] == "dropsecond"]
        assert pruned["pruning"]["removed_layers"] == [2]
        assert len(pruned["provenance"]["plugins"]["method"]["sha256"]) == 64
    finally:
        methods.unregister("dropsecond")


def test_missing_include_path_is_one_line(tmp_path, capsys):
    assert main(["run", "--include-path", str(tmp_path / "nope"), "--store", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "is not a folder" in err and err.count("\n") == 1
