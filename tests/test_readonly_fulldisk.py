"""Read-only folders and a full disk, for real: `bench` runs as a subprocess inside a private mount namespace
(`unshare -m`) holding a read-only bind mount and a tiny tmpfs. (As root, chmod does not stop writes, so
permission bits would prove nothing.) Where the platform cannot do that, the tests skip and say why.

Every case must end in exit 2 with one `error: ... (hint: ...)` line and no traceback; a read-only case
writes nothing, a full-disk case keeps what was there before (compared by content inside the namespace).
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import shutil
import subprocess
import textwrap

import pytest
import test_runner_fixtures as fx

tiny_env = fx.tiny_env  # a shared fixture

ERROR_LINE = re.compile(r"error: .+ \(hint: .+\)")


@functools.cache
def _namespace_problem() -> str | None:
    """None when a private mount namespace with tmpfs and read-only bind mounts works here, else why not."""
    if shutil.which("unshare") is None:
        return "no `unshare` on this system"
    probe = "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs $d && mount -o remount,ro $d && ! touch $d/x 2>/dev/null"
    try:
        proc = subprocess.run(["unshare", "-m", "sh", "-c", probe], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unshare failed: {exc}"
    if proc.returncode != 0:
        return f"cannot mount in a private namespace here (needs root or CAP_SYS_ADMIN): {proc.stderr.strip()[:200]}"
    return None


def _in_namespace(script: str, cwd) -> None:
    problem = _namespace_problem()
    if problem:
        pytest.skip(problem)
    full = "set -u\nmount --make-rprivate / 2>/dev/null || true\n" + textwrap.dedent(script)
    proc = subprocess.run(["unshare", "-m", "sh", "-c", full], capture_output=True, text=True, cwd=cwd,
                          env=fx.subprocess_env(), timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


def _bench(name: str, args: str, background: bool = False) -> str:
    """Shell lines that run `bench ARGS` and keep its exit code and stderr as results/NAME.{rc,err}
    (`background`: alongside the next ones, until a `wait`)."""
    line = f"{fx.PYTHON} -m bench {args} > results/{name}.out 2> results/{name}.err; echo $? > results/{name}.rc"
    return f"({line}) &\n" if background else line + "\n"


def _result(root, name: str) -> tuple[int, list[str]]:
    rc = int((root / "results" / f"{name}.rc").read_text())
    return rc, [line for line in (root / "results" / f"{name}.err").read_text().splitlines() if line.strip()]


def _assert_one_error(rc: int, lines: list[str], fragment: str, only_line: bool = True) -> None:
    assert rc == 2, lines
    assert not any("Traceback" in line for line in lines), "\n".join(lines)
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0] == lines[-1] and ERROR_LINE.fullmatch(errors[0]), lines
    assert fragment in errors[0], errors[0]
    if only_line:
        assert len(lines) == 1, lines


# every read-only case fails before anything heavy is imported, so one interpreter runs them all in turn
IN_ONE_PROCESS = """
import contextlib, io, json, sys, traceback
from bench.cli import main
for name, argv in json.loads(sys.argv[1]).items():
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except BaseException:
            rc = 1
            err.write(traceback.format_exc())
    open(f"results/{name}.err", "w").write(err.getvalue())
    open(f"results/{name}.rc", "w").write(str(rc))
"""

READ_ONLY = {  # name -> (bench arguments, what the line says)
    "run-read-only-finished-store": ("run --config run.yaml --store ro/store --plain --no-report",
                                     "--store ro/store is not writable: it is on a read-only file system"),
    "run-read-only-new-store": ("run --config run.yaml --store ro/new --plain --no-report",
                                "is not writable (in "),
    "report-out-read-only": ("report --store store --out ro/pages", "--out ro/pages is not writable"),
    "regress-baseline-read-only": ("regress --update-baseline --store store --baseline ro/baseline.json",
                                   "--baseline ro/baseline.json is not writable"),
    "prune-out-read-only": ("prune --model {model} --method last --layers 1 --device cpu --out ro/pruned",
                            "--out ro/pruned is not writable"),
    "prune-out-read-only-parent": ("prune --model {model} --method last --layers 1 --device cpu --out ro/out",
                                   "is not writable"),
}


@pytest.fixture(scope="module")
def read_only_results(tiny_env, tmp_path_factory):
    root = tmp_path_factory.mktemp("read-only")
    (root / "results").mkdir()
    tiny_env.config(root / "run.yaml", methods=["last"])
    from bench.cli import main

    assert main(["run", "--config", str(root / "run.yaml"), "--store", str(root / "store"), "--plain",
                 "--no-report"]) == 0
    (root / "ro").mkdir()
    shutil.copytree(root / "store", root / "ro" / "store")
    (root / "ro" / "out").mkdir()  # empty: the export would be built beside it, in the read-only folder
    before = _snapshot(root / "ro")
    cases = {name: shlex.split(args.format(model=tiny_env.model)) for name, (args, _) in READ_ONLY.items()}
    script = "mount --bind ro ro && mount -o remount,bind,ro ro\n"
    script += f"{fx.PYTHON} -c {shlex.quote(IN_ONE_PROCESS)} {shlex.quote(json.dumps(cases))}\n"
    _in_namespace(script, root)
    assert _snapshot(root / "ro") == before  # nothing was written (the mount is gone: the real folder)
    return root


def _snapshot(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>" for p in folder.rglob("*")}


@pytest.mark.parametrize("name", sorted(READ_ONLY))
def test_read_only_targets_are_one_line_and_exit_2(read_only_results, name):
    rc, lines = _result(read_only_results, name)
    _assert_one_error(rc, lines, READ_ONLY[name][1])


@pytest.fixture(scope="module")
def full_disk_results(tiny_env, tmp_path_factory):
    """One tmpfs: a first export and a first run fit; then a filler takes every free byte and the same
    commands run again. Inside the namespace, the contents before and after are listed by sha256."""
    root = tmp_path_factory.mktemp("full-disk")
    (root / "results").mkdir()
    (root / "disk").mkdir()
    tiny_env.config(root / "run.yaml", methods=["last"])
    prune = f"prune --model {tiny_env.model} --method last --layers 1 --device cpu --dtype float32"
    listing = "(cd disk && find . -path ./filler -prune -o -type f -print | grep -v '\\.lock$' | sort | xargs sha256sum)"
    script = "mount -t tmpfs -o size=4m tmpfs disk\n"
    script += _bench("prune-first", f"{prune} --out disk/pruned", background=True)
    script += _bench("run-first", "run --config run.yaml --store disk/store --plain --no-report", background=True)
    script += "wait\n"
    script += "dd if=/dev/zero of=disk/filler bs=4k 2>/dev/null; sync\n"
    script += f"{listing} > results/before.txt\n"
    script += _bench("prune-full", f"{prune} --method shortgpt --calib {tiny_env.corpus} --calib-samples 4 "
                                   "--calib-seq-len 16 --out disk/pruned", background=True)
    script += _bench("run-full", "run --config run.yaml --store disk/store --plain --no-report --force",
                     background=True)
    script += _bench("report-full", "report --store disk/store --out disk/pages --no-figures", background=True)
    script += "wait\n"
    script += f"{listing} > results/after.txt\n"
    script += "ls -a disk > results/top.txt\n"
    _in_namespace(script, root)
    for first in ("prune-first", "run-first"):
        assert _result(root, first)[0] == 0, _result(root, first)
    return root


def test_a_full_disk_during_export_keeps_the_previous_export(full_disk_results):
    rc, lines = _result(full_disk_results, "prune-full")
    _assert_one_error(rc, lines, "the disk is full", only_line=False)  # log lines of the load come before it
    assert "kept: --out is unchanged" in lines[-1]


def test_a_full_disk_during_a_run_keeps_every_finished_cell(full_disk_results):
    rc, lines = _result(full_disk_results, "run-full")
    _assert_one_error(rc, lines, "disk is full", only_line=False)  # progress lines come before it
    assert "kept: every cell finished before is in the store" in lines[-1]


def test_a_full_disk_during_report_is_one_line(full_disk_results):
    rc, lines = _result(full_disk_results, "report-full")
    _assert_one_error(rc, lines, "disk is full", only_line=False)


def test_a_full_disk_changes_nothing_that_was_there(full_disk_results):
    before = (full_disk_results / "results" / "before.txt").read_text()
    after = (full_disk_results / "results" / "after.txt").read_text()
    assert "pruned/model.safetensors" in before and "store/results.jsonl" in before
    assert after == before  # the export, the records and the index: byte for byte
    top = (full_disk_results / "results" / "top.txt").read_text().split()
    assert sorted(top) == sorted([".", "..", "filler", "pruned", "store"])  # no temporary folder left
