"""Issue 15's findings, each as a test: --out never destroys user data, the store heals a damaged index or
record, files follow the umask, Slurm is refused where there is none, and git stays quiet.
(The bad-input table is tests/test_bad_input.py; read-only and full-disk cases tests/test_readonly_fulldisk.py.)"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess

import pytest
import test_runner_fixtures as fx

from bench.cli import main

tiny_env = fx.tiny_env  # a shared fixture


@pytest.fixture
def umask():
    """Set the process umask for one test (restored after)."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_to(mask: int) -> None:
        os.umask(mask)

    yield set_to
    os.umask(saved)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _prune(env, out, *extra, method="last"):
    return main(["prune", "--model", str(env.model), "--method", method, "--layers", "1", "--calib", str(env.corpus),
                 "--calib-samples", "4", "--calib-seq-len", "16", "--device", "cpu", "--dtype", "float32",
                 "--out", str(out), *extra])


# ------------------------------------------------------------------------------- finding 1: --out


def test_finding_1_a_folder_with_a_plan_json_is_not_an_export(tiny_env, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "plan.json").write_text("{}")
    (tmp_path / "p" / "thesis.tex").write_text("draft")
    assert main(["prune", "--model", str(tiny_env.model), "--method", "random", "--layers", "2", "--out", "p"]) == 2
    assert "holds files the harness did not write" in capsys.readouterr().err
    assert (tmp_path / "p" / "thesis.tex").read_text() == "draft"
    for out in (".", ""):
        assert main(["prune", "--model", str(tiny_env.model), "--method", "random", "--layers", "2", "--out", out]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def test_prune_replaces_its_own_export_and_nothing_else(tiny_env, tmp_path, capsys, umask):
    from bench.models.export_target import MARKER

    umask(0o027)
    out = tmp_path / "pruned"
    assert _prune(tiny_env, out, method="last") == 0
    marker = json.loads((out / MARKER).read_text())
    assert {"model.safetensors", "config.json", "plan.json", "README.md"} <= set(marker["files"])
    assert _mode(out) == 0o750 and _mode(out / "model.safetensors") == 0o640 and _mode(out / "plan.json") == 0o640
    assert _prune(tiny_env, out, method="shortgpt") == 0  # its own previous export: replaced
    assert json.loads((out / "plan.json").read_text())["method"] == "shortgpt"
    assert not [p for p in tmp_path.iterdir() if p.name != "pruned"]  # no temporary or old folder left

    (out / "README.md").write_text("my own notes on this model")
    capsys.readouterr()
    assert _prune(tiny_env, out) == 2
    assert "pass --force to replace it" in capsys.readouterr().err
    assert (out / "README.md").read_text() == "my own notes on this model"
    assert _prune(tiny_env, out, "--force") == 0
    assert (out / "README.md").read_text().startswith("---\nbase_model:")

    (out / "eval-results.csv").write_text("mine")
    assert _prune(tiny_env, out, "--force") == 2
    assert "not even with --force" in capsys.readouterr().err
    assert (out / "eval-results.csv").read_text() == "mine"


def test_a_full_disk_during_export_keeps_the_previous_export(tiny_env, tmp_path, monkeypatch, capsys):
    import errno

    from transformers import PreTrainedModel

    out = tmp_path / "pruned"
    assert _prune(tiny_env, out) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(args[0]))

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", full)
    capsys.readouterr()
    assert _prune(tiny_env, out, method="shortgpt") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the disk is full writing ") and "kept: --out is unchanged" in err[0]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pruned"]


# ------------------------------------------------------------------------------- finding 2: the store


def _run(env, tmp_path, *extra, **over):
    cfg = env.config(tmp_path / "run.yaml", methods=["last"], **over)
    return main(["run", "--config", str(cfg), "--store", str(tmp_path / "store"), "--plain", "--no-report", *extra])


@pytest.mark.parametrize("damage", ["bad-line", "binary", "not-objects"])
def test_finding_2_an_unreadable_index_is_rebuilt(tiny_env, tmp_path, capsys, caplog, damage):
    assert _run(tiny_env, tmp_path) == 0
    index = tmp_path / "store" / "results.jsonl"
    keys = sorted(json.loads(line)["key"] for line in index.read_text().splitlines())
    if damage == "bad-line":
        index.write_text(index.read_text() + '{"key": broken\n')
    elif damage == "binary":
        index.write_bytes(b"\xff\xfe\x00garbage")
    else:
        index.write_text("[1, 2]\n3\n")
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="bench"):
        assert _run(tiny_env, tmp_path) == 0
    assert "0 cells computed, 2 skipped" in capsys.readouterr().out
    assert any("rebuilding it from the cell folders" in r.getMessage() for r in caplog.records)
    assert sorted(json.loads(line)["key"] for line in index.read_text().splitlines()) == keys


@pytest.mark.parametrize("content", ['{"broken', "[]", '{"key": "another", "status": "ok"}'])
def test_a_corrupt_record_is_recomputed_and_never_fatal(tiny_env, tmp_path, capsys, caplog, content):
    assert _run(tiny_env, tmp_path) == 0
    record = next(p for p in (tmp_path / "store").glob("cells/*/record.json")
                  if json.loads(p.read_text())["cell"]["kind"] == "pruned")
    record.write_text(content)
    capsys.readouterr()
    assert _run(tiny_env, tmp_path) == 0
    assert "1 cells computed, 1 skipped" in capsys.readouterr().out
    assert json.loads(record.read_text())["status"] == "ok"
    # report and regress read around a damaged record, and do not promise to recompute anything
    record.write_text(content)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bench"):
        assert main(["report", "--store", str(tmp_path / "store"), "--out", str(tmp_path / "pages"),
                     "--no-figures"]) == 0
    messages = [r.getMessage() for r in caplog.records]
    assert any("ignoring it" in m for m in messages) and not any("will be recomputed" in m for m in messages)


# ------------------------------------------------------------------------------- finding 3: the umask


@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750),
                                                        (0o077, 0o600, 0o700)])
def test_finding_3_atomic_writes_follow_the_umask(tmp_path, umask, mask, file_mode, dir_mode):
    from bench.core.atomic import current_umask, make_temp_dir, write_json

    umask(mask)
    assert current_umask() == mask
    write_json(tmp_path / "a" / "x.json", {"a": 1})
    assert _mode(tmp_path / "a" / "x.json") == file_mode and _mode(tmp_path / "a") == dir_mode
    assert _mode(make_temp_dir(tmp_path, ".t-")) == dir_mode


def test_a_store_and_its_pages_are_readable_by_others(tiny_env, tmp_path, monkeypatch, umask):
    umask(0o022)
    monkeypatch.chdir(tmp_path)
    cfg = tiny_env.config(tmp_path / "run.yaml", methods=["last"])
    assert main(["run", "--config", str(cfg), "--store", "store", "--plain", "--report-dir", "pages"]) == 0
    written = [p for p in [*(tmp_path / "store").rglob("*"), *(tmp_path / "pages").rglob("*")]
               if p.is_file() and p.suffix != ".lock"]
    assert written and {oct(_mode(p)) for p in written} == {oct(0o644)}


# ------------------------------------------------------------------------------- finding 6: Slurm


def test_finding_6_slurm_is_refused_when_the_controller_does_not_answer(tiny_env, tmp_path, monkeypatch, capsys):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in {"sbatch": "exit 0", "srun": "exit 0",
                       "sinfo": "echo 'slurm_load_partitions: Unable to contact slurm controller' >&2; exit 1"}.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    assert _run(tiny_env, tmp_path, "--executor", "slurm") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach the Slurm controller" in err[0] and "submitit-local" in err[0]
    assert not (tmp_path / "store").exists()
    (bin_dir / "sinfo").write_text("#!/bin/sh\necho gpu\n")  # a controller that answers: accepted
    from bench.run import config
    from bench.run.slurm import check_reachable

    check_reachable(config.resolve({"executor": "slurm"}))


def test_submitit_local_is_its_own_executor_without_a_percent_j_folder(tmp_path):
    from bench.results.store import Store
    from bench.run import config
    from bench.run.slurm import check_reachable, make_executor

    spec = config.resolve({"executor": "submitit-local"})
    check_reachable(spec)  # needs no Slurm
    executor = make_executor(spec, Store(tmp_path / "store"))
    assert type(executor._executor).__name__ == "LocalExecutor"
    assert "%j" not in str(executor.folder)
    slurm = config.resolve({"executor": "slurm", "slurm": {"cluster": "local"}})
    assert "%j" not in str(make_executor(slurm, Store(tmp_path / "store")).folder)


# ------------------------------------------------------------------------------- finding 7: messages


def test_finding_7_lm_eval_asks_git_quietly(tmp_path, monkeypatch, capfd):
    import shutil

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    import lm_eval.evaluator as evaluator

    from bench.evaluate.environment import quiet_git_probe

    monkeypatch.chdir(tmp_path)  # not a git checkout
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    evaluator.get_git_commit_hash()
    assert "not a git repository" in capfd.readouterr().err  # what lm-eval alone prints
    with quiet_git_probe():
        assert evaluator.get_git_commit_hash() is None
    assert capfd.readouterr().err == ""
    assert evaluator.get_git_commit_hash.__module__.startswith("lm_eval")  # restored


def test_argparse_errors_are_one_line_in_a_real_process(tmp_path):
    proc = subprocess.run([fx.PYTHON, "-m", "bench", "prune", "--method"], capture_output=True, text=True,
                          cwd=tmp_path, env=fx.subprocess_env())
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["error: bench prune: argument --method: expected one argument "
                                        "(hint: see `bench prune --help`)"]


def test_a_damaged_dense_artifact_is_computed_again(tiny_env, tmp_path, capsys, caplog):
    """Pruned cells read the dense cell's per-sample records (stability): a damaged samples.jsonl makes the
    dense cell computed again instead of failing every pruned cell on every run."""
    over = {"eval": {"tasks": ["piqa"], "limit": 4, "stability": True}}
    assert _run(tiny_env, tmp_path, **over) == 0
    records = {json.loads(p.read_text())["cell"]["kind"]: p for p in (tmp_path / "store").glob("cells/*/record.json")}
    dense_finished = json.loads(records["dense"].read_text())["finished_at"]
    (records["dense"].parent / "samples.jsonl").write_text('{"task": "piqa", broken\n')
    records["pruned"].unlink()
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="bench"):
        assert _run(tiny_env, tmp_path, **over) == 0
    assert any("computing it again" in r.getMessage() or "computes it again" in r.getMessage() for r in caplog.records)
    assert json.loads(records["dense"].read_text())["finished_at"] > dense_finished
    assert [json.loads(line) for line in (records["dense"].parent / "samples.jsonl").read_text().splitlines()]
    pruned = json.loads(records["pruned"].read_text())
    assert pruned["status"] == "ok" and pruned["stability"]["mean"] is not None
