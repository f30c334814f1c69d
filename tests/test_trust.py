"""Issue 25 (trust, round 3), the cases that are not bad input (exit 2) but faults: a damaged store read by
report and regress, a damaged data cache, a killed export, pipes, long or multi-line error messages, and
`--force` naming a user's file. (The refusals are rows of the bad-input table, tests/bad_input_table.py.)"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import time

import pytest
import test_runner_fixtures as fx

from bench.cli import main

tiny_env = fx.tiny_env  # a shared fixture


def _run(env, tmp_path, *extra, **over):
    cfg = env.config(tmp_path / "run.yaml", methods=["last"], **over)
    return main(["run", "--config", str(cfg), "--store", str(tmp_path / "store"), "--plain", "--no-report", *extra])


def _records(store):
    return {json.loads(p.read_text())["cell"]["kind"]: p for p in store.glob("cells/*/record.json")}


TASKS = {"eval": {"tasks": ["piqa"], "limit": 4, "stability": True}}


@pytest.fixture
def store_and_baseline(tiny_env, tmp_path):
    """A store of two cells with per-sample records, and a baseline of it."""
    assert _run(tiny_env, tmp_path, **TASKS) == 0
    baseline = tmp_path / "baseline.json"
    assert main(["regress", "--store", str(tmp_path / "store"), "--update-baseline", "--baseline", str(baseline)]) == 0
    return tmp_path / "store", baseline


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "(hint: " in lines[0], lines
    return lines[0]


def test_a_truncated_samples_file_is_reported_then_recomputed(tiny_env, tmp_path, store_and_baseline, capsys, caplog):
    store, baseline = store_and_baseline
    samples = _records(store)["pruned"].parent / "samples.jsonl"
    samples.write_bytes(samples.read_bytes()[: samples.stat().st_size // 2])  # cut mid-line
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="bench"):
        assert main(["report", "--store", str(store), "--out", str(tmp_path / "pages"), "--no-figures"]) == 0
    assert any("samples.jsonl has" in r.getMessage() for r in caplog.records)
    page = (tmp_path / "pages" / "leaderboard.md").read_text()
    assert "DamagedArtifact" in page  # the cell is listed with the failed ones, with why
    capsys.readouterr()
    assert main(["regress", "--store", str(store), "--baseline", str(baseline)]) == 1
    out = capsys.readouterr().out
    assert "failed" in out and "DamagedArtifact" in out and "Traceback" not in out
    assert _run(tiny_env, tmp_path, **TASKS) == 0
    assert "1 cells computed, 1 skipped" in capsys.readouterr().out
    assert main(["regress", "--store", str(store), "--baseline", str(baseline)]) == 0


def test_a_garbled_samples_file_of_the_same_size_is_one_line_then_recomputed(tiny_env, tmp_path, store_and_baseline,
                                                                            capsys):
    store, baseline = store_and_baseline
    samples = _records(store)["pruned"].parent / "samples.jsonl"
    data = bytearray(samples.read_bytes())
    data[10:20] = b"#" * 10  # the same size: only the sha256 tells
    samples.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["regress", "--store", str(store), "--baseline", str(baseline)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "samples.jsonl is damaged: line 1 is not a JSON object" in line and "bench run --store" in line
    assert main(["report", "--store", str(store), "--out", str(tmp_path / "pages"), "--no-figures"]) == 2
    assert "is damaged" in _one_error_line(capsys.readouterr().err)
    assert _run(tiny_env, tmp_path, **TASKS) == 0
    assert "1 cells computed, 1 skipped" in capsys.readouterr().out
    assert main(["regress", "--store", str(store), "--baseline", str(baseline)]) == 0


@pytest.mark.parametrize("edit", ["schema-two", "seed-text", "cell-a-string", "accuracy-a-list", "layers-text",
                                  "timings-a-list"])
def test_a_record_of_the_wrong_types_is_ignored_by_report_and_regress_and_recomputed(
        tiny_env, tmp_path, store_and_baseline, capsys, caplog, edit):
    store, baseline = store_and_baseline
    path = _records(store)["pruned"]
    record = json.loads(path.read_text())
    if edit == "schema-two":
        record["schema"] = "two"
    elif edit == "seed-text":
        record["cell"]["seed"] = "zero"
    elif edit == "cell-a-string":
        record["cell"] = "pruned"
    elif edit == "accuracy-a-list":
        record["accuracy"] = [1, 2]
    elif edit == "layers-text":
        record["pruning"]["layers_removed"] = "one"
    else:
        record["timings"] = [1]
    path.write_text(json.dumps(record))
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="bench"):
        assert main(["report", "--store", str(store), "--out", str(tmp_path / "pages"), "--no-figures"]) == 0
        assert main(["regress", "--store", str(store), "--baseline", str(baseline)]) == 1
    assert "not in the store" in capsys.readouterr().out
    assert any("cannot be read" in r.getMessage() and "ignoring it" in r.getMessage() for r in caplog.records)
    assert _run(tiny_env, tmp_path, **TASKS) == 0
    assert "1 cells computed, 1 skipped" in capsys.readouterr().out


def test_a_store_holding_a_seed_beyond_64_bits_still_writes_its_view(tiny_env, tmp_path, capsys):
    """A record written before seeds were range-checked (an OverflowError in the parquet view crashed every
    later run into that store)."""
    assert _run(tiny_env, tmp_path) == 0
    path = _records(tmp_path / "store")["pruned"]
    record = json.loads(path.read_text())
    record["cell"]["seed"] = 99999999999999999999999
    path.write_text(json.dumps(record))
    assert _run(tiny_env, tmp_path) == 0  # the view is rewritten; the seed becomes text there
    import pandas as pd

    view = pd.read_parquet(tmp_path / "store" / "results.parquet")
    assert "99999999999999999999999" in set(view["seed"].astype(str))


def test_a_users_files_are_replaced_only_when_named_with_force(tiny_env, tmp_path, store_and_baseline, capsys):
    store, baseline = store_and_baseline
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": true}\n')
    args = ["regress", "--store", str(store), "--update-baseline", "--baseline", str(notes)]
    assert main(args) == 2 and notes.read_text() == '{"mine": true}\n'
    assert main([*args, "--force"]) == 0 and json.loads(notes.read_text())["schema"] == 2
    assert main(args) == 0  # now a baseline: replaced without --force
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "leaderboard.md").write_text("# my notes\n")
    report = ["report", "--store", str(store), "--out", str(docs), "--no-figures"]
    assert main(report) == 2 and (docs / "leaderboard.md").read_text() == "# my notes\n"
    assert main([*report, "--force"]) == 0 and "bench report" in (docs / "leaderboard.md").read_text()
    assert main(report) == 0  # its own pages: replaced
    from bench.report import check_out

    check_out(fx.REPO / "reports")  # the committed pages are the harness's: regenerated without --force


def test_every_parser_takes_options_only_as_written():
    import argparse

    from bench.cli import build_parser

    parsers, seen = [build_parser()], 0
    while parsers:
        parser = parsers.pop()
        assert parser.allow_abbrev is False, parser.prog
        seen += 1
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    assert seen >= 8


def test_a_multi_line_or_huge_message_is_one_capped_line():
    from bench.cli.edge import MAX_MESSAGE, error_line

    line = error_line("transformers cannot load x:\nUnrecognized model.\n\nShould have a `model_type` key\n  in its "
                      "config.json", "a hint\nover two lines")
    assert "\n" not in line and "Unrecognized model. Should have" in line
    huge = error_line("models must be a list, not " + "[" * 10 + "lol, " * 10_000_000, "fix it")
    assert len(huge) < 2 * MAX_MESSAGE + 40 and huge.endswith("(hint: fix it)")


def test_a_model_folder_transformers_cannot_load_is_one_error_line(tiny_env, tmp_path, capsys):
    folder = tmp_path / "odd-model"
    shutil.copytree(tiny_env.model, folder)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "not-a-model-type"
    (folder / "config.json").write_text(json.dumps(config))
    assert main(["prune", "--model", str(folder), "--method", "last", "--layers", "1", "--out",
                 str(tmp_path / "p"), "--device", "cpu"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "transformers cannot load" in line
    assert not (tmp_path / "p").exists()


def test_a_pipe_is_read_once_and_its_text_kept(tiny_env, tmp_path):
    """`--calib <(...)`: the early check reads the pipe; calibration uses what it read."""
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    cmd = (f"{fx.PYTHON} -m bench prune --model {tiny_env.model} --method shortgpt --layers 1 --calib "
           f"<(cat {tiny_env.corpus}) --calib-samples 4 --calib-seq-len 16 --device cpu --out {tmp_path / 'p'}")
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=tmp_path, env=fx.subprocess_env(),
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "saved" in proc.stdout and (tmp_path / "p" / "model.safetensors").is_file()


def test_a_fifo_without_a_writer_does_not_block(tiny_env, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    proc = subprocess.run([fx.PYTHON, "-m", "bench", "prune", "--model", str(tiny_env.model), "--method", "shortgpt",
                           "--layers", "1", "--calib", str(fifo), "--out", str(tmp_path / "p")], capture_output=True,
                          text=True, cwd=tmp_path, env=fx.subprocess_env(), timeout=120)
    assert proc.returncode == 2
    assert "calibration text pipe" in _one_error_line(proc.stderr)


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_killed_exports_temporary_folder_is_removed_by_the_next_export(tiny_env, tmp_path, capsys):
    host = socket.gethostname()
    dead = tmp_path / f".p.tmp-{host}-{_dead_pid()}-abcd1234"
    alive = tmp_path / f".p.tmp-{host}-{os.getpid()}-efgh5678"
    legacy = tmp_path / ".p.tmp-k2j4h5g6"  # an older version's, not changed for two hours
    for folder in (dead, alive, legacy):
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"\0" * 4096)
    old = time.time() - 7200
    os.utime(legacy, (old, old))
    assert main(["prune", "--model", str(tiny_env.model), "--method", "last", "--layers", "1", "--device", "cpu",
                 "--out", str(tmp_path / "p")]) == 0
    assert not dead.exists() and not legacy.exists()
    assert alive.exists()  # a live process's: left alone
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["p", alive.name])


@pytest.fixture
def data_cache(tmp_path, monkeypatch):
    """A cache of its own holding the (small) exllamav3 wheel, copied from the real download cache."""
    from bench.core.paths import cache_root
    from bench.data import fetch

    source = fetch.SOURCES["exllamav3-1.6.5"]
    wheel = fetch._find_wheel(cache_root() / "downloads", source.wheel)
    if wheel is None:
        pytest.skip("the exllamav3 wheel is not in the download cache")
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache" / "downloads").mkdir(parents=True)
    shutil.copy(wheel, tmp_path / "cache" / "downloads" / wheel.name)
    fetch.ensure(source.name)
    return source


@pytest.mark.parametrize("damage", ["truncated", "emptied", "removed"])
def test_a_damaged_data_folder_is_extracted_again_from_the_cached_wheel(data_cache, caplog, damage):
    from bench.data import fetch

    folder = data_cache.folder
    wiki = folder / "exllamav3" / "conversion" / "standard_cal_data" / "wiki.utf8"
    size = wiki.stat().st_size
    assert fetch.is_cached(data_cache.name)
    if damage == "truncated":
        wiki.write_bytes(wiki.read_bytes()[: size // 3])
    elif damage == "emptied":  # `rm -rf folder/*` keeps the dot-file marker
        for child in folder.iterdir():
            if child.name != fetch.MARKER:
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    else:
        wiki.unlink()
    with caplog.at_level(logging.WARNING, logger="bench"):
        assert not fetch.is_cached(data_cache.name)
    assert any("extracting it again" in r.getMessage() for r in caplog.records)
    fetch.ensure(data_cache.name)
    assert wiki.stat().st_size == size and fetch.is_cached(data_cache.name)
