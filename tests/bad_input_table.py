"""The bad-input table: (id, argv, what stderr must say). Every case must exit 2 with exactly one stderr line
`error: <what> (hint: <what to do>)`, no traceback, no model loaded and nothing written.

Placeholders in argv are filled by `sandbox()`: {cfg} a valid run YAML over a tiny local model, {model} that
model's folder, {corpus} a local text corpus, {file} a plain file, {bin} a binary file, {empty} an empty
file, {dir} an empty folder, {badjsonl} malformed JSONL, {notes} a folder holding a user's files and a
plan.json (finding 1), {edited} a previous export of the harness whose model card was edited since,
{store} a result store with one record, {home} the home folder. (No tests here; `test_bad_input.py` runs
the table, and `measure()` reports it for any checkout, which is how the before/after counts were taken.)
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import traceback
from pathlib import Path

RUN = ["run", "--config", "{cfg}", "--store", "store", "--plain"]
PRUNE = ["prune", "--model", "{model}", "--calib", "{corpus}", "--calib-samples", "4", "--calib-seq-len", "16",
         "--device", "cpu"]
SHORTGPT = [*PRUNE, "--method", "shortgpt", "--layers", "1"]

# (id, argv, a fragment of the one stderr line)
CASES: list[tuple[str, list[str], str]] = [
    # --- bench run: names, budgets, parameters, YAML (the suite's earlier cases, kept)
    ("run-unknown-model", [*RUN, "--models", "smollm2-13m"], "unknown model 'smollm2-13m' (hint: did you mean smollm2-135m"),
    ("run-missing-model-folder", [*RUN, "--models", "./no/such/folder"], "no such file or folder"),
    ("run-unknown-method", [*RUN, "--methods", "shortgp"], "unknown method 'shortgp' (hint: did you mean shortgpt"),
    ("run-unknown-task", [*RUN, "--tasks", "piqaa"], "unknown task 'piqaa' (hint: did you mean piqa"),
    ("run-unknown-corpus", [*RUN, "--ppl", "wikitext"], "unknown perplexity corpus"),
    ("run-unknown-corpus-plural", [*RUN, "--ppl", "zzz"], "known perplexity corpora: "),
    ("run-unknown-param", [*RUN, "--methods", "laco", "--param", "laco.treshold=0.3"], "did you mean threshold"),
    ("run-param-of-paramless-method", [*RUN, "--methods", "shortgpt", "--param", "shortgpt.x=1"],
     "unknown parameter of shortgpt 'x' (hint: shortgpt takes no parameters)"),
    ("run-bad-param-value", [*RUN, "--methods", "laco", "--param", "laco.threshold=high"], "laco.threshold expects"),
    ("run-malformed-param", [*RUN, "--param", "threshold"], "malformed --param"),
    ("run-param-for-absent-method", [*RUN, "--methods", "laco", "--param", "shortgpt.x=1"], "not in this run"),
    ("run-param-without-method", [*RUN, "--methods", "laco,last", "--param", "threshold=0.3"], "which method"),
    ("run-ratio-above-1", [*RUN, "--ratios", "1.5"], "ratio 1.5 is outside (0, 1)"),
    ("run-ratio-zero", [*RUN, "--ratios", "0"], "ratio 0 is outside (0, 1)"),
    ("run-ratios-not-a-number", [*RUN, "--ratios", "abc"], "ratios must be a number, not 'abc' (hint: e.g. --ratios 0.125"),
    ("run-layers-not-a-number", [*RUN, "--layers", "two"], "layers must be a number, not 'two' (hint: e.g. --layers"),
    ("run-layers-leave-none", [*RUN, "--layers", "4"], "removing 4 layers leaves no layer"),
    ("run-layers-zero", [*RUN, "--layers", "0"], "layer budget 0 must be at least 1"),
    ("run-seed-not-a-number", [*RUN, "--seed", "x"], "seeds must be a number"),
    ("run-limit-zero", [*RUN, "--limit", "0"], "limit 0 must be at least 1"),
    ("run-limit-not-a-number", [*RUN, "--limit", "all"], "eval.limit must be a number"),
    ("run-batch-size-zero", [*RUN, "--batch-size", "0"], "batch_size >= 1"),
    ("run-calib-samples-zero", [*RUN, "--calib-samples", "0"], "n_samples >= 1"),
    ("run-no-methods", [*RUN, "--methods", ""], "no methods given"),
    ("run-duplicate-method", [*RUN, "--methods", "last,last"], "listed twice"),
    ("run-unknown-preset", [*RUN, "--preset", "fast"], "unknown preset 'fast'"),
    ("run-unknown-dtype", [*RUN, "--dtype", "fp8"], "unknown dtype"),
    ("run-unknown-device", [*RUN, "--device", "tpu"], "unknown device 'tpu'"),
    ("run-cuda-absent", [*RUN, "--device", "cuda"], "CUDA is not available"),
    ("run-max-memory-not-pairs", [*RUN, "--max-memory", "2GiB"], "--max-memory entry '2GiB' is not DEVICE=SIZE"),
    ("run-max-memory-bad-size", [*RUN, "--max-memory", "cpu=lots"], "--max-memory size 'lots' for cpu is not a size"),
    ("run-max-memory-unknown-device", [*RUN, "--max-memory", "tpu=2GiB"], "--max-memory names an unknown device"),
    ("run-max-memory-absent-gpu", [*RUN, "--max-memory", "7=70GiB"], "--max-memory names GPU 7 but this machine"),
    ("run-offload-dir-is-a-file", [*RUN, "--max-memory", "cpu=1GiB", "--offload-dir", "{file}"],
     "(hint: give --offload-dir a folder"),
    ("run-malformed-yaml", ["run", "--config", "bad.yaml", "--store", "store"], "is not valid YAML at line"),
    ("run-unknown-key", ["run", "--config", "unknown-key.yaml", "--store", "store"],
     "unknown key 'evaluation' (hint: did you mean eval"),
    ("run-unknown-nested-key", ["run", "--config", "nested-key.yaml", "--store", "store"],
     "unknown key 'eval.limt' (hint: did you mean limit"),
    ("run-config-missing", ["run", "--config", "nope.yaml", "--store", "store"], "cannot read config file"),
    ("run-config-is-a-folder", ["run", "--config", "{dir}", "--store", "store"], "cannot read config file"),
    # --- bench run: paths (findings 4 and 5)
    ("run-store-is-a-file", ["run", "--config", "{cfg}", "--store", "{file}"], "is a file, not a folder"),
    ("run-store-under-a-file", ["run", "--config", "{cfg}", "--store", "{file}/store"], "lies under the file"),
    ("run-store-in-proc", ["run", "--config", "{cfg}", "--store", "/proc/x"], "--store /proc/x is not writable"),
    ("run-report-dir-is-a-file", [*RUN, "--reports", "{file}"], "--reports"),
    ("run-report-dir-under-a-file", [*RUN, "--report-dir", "{file}/pages"], "lies under the file"),
    ("run-calib-missing", [*RUN, "--methods", "shortgpt", "--calib", "/nonexistent.txt"],
     "calibration text source '/nonexistent.txt' is neither wikipedia nor c4 nor a file"),
    ("run-calib-binary", [*RUN, "--methods", "shortgpt", "--calib", "{bin}"], "is not UTF-8 text"),
    ("run-calib-folder", [*RUN, "--methods", "shortgpt", "--calib", "{dir}"], "is a folder"),
    ("run-calib-empty", [*RUN, "--methods", "shortgpt", "--calib", "{empty}"], "holds no text"),
    ("run-calib-bad-jsonl", [*RUN, "--methods", "shortgpt", "--calib", "{badjsonl}"], "line 1 is not a JSON object"),
    ("run-ppl-file-missing", [*RUN, "--ppl", "no-such-corpus.txt"], "perplexity corpus file no-such-corpus.txt does not exist"),
    ("run-ppl-binary", [*RUN, "--ppl", "{bin}"], "perplexity corpus file"),
    ("run-train-data-missing", ["run", "--config", "train-missing.yaml", "--store", "store"],
     "training text source 'nope.txt' is neither"),
    ("run-slurm-without-slurm", [*RUN, "--executor", "slurm"], "no `sbatch` is on PATH (hint: run from a Slurm login node"),
    ("run-cache-dir-is-a-file", ["--cache-dir", "{file}", *RUN], "--cache-dir"),
    # --- argparse (finding 7: one line and a hint, not a usage block)
    ("run-unknown-option", [*RUN, "--bogus"], "bench run: unrecognized arguments: --bogus (hint: see `bench run --help`)"),
    ("run-unknown-executor", [*RUN, "--executor", "cloud"], "argument --executor: invalid choice"),
    ("run-fewshot-not-int", [*RUN, "--num-fewshot", "some"], "argument --num-fewshot: invalid int value"),
    ("no-such-command", ["frobnicate"], "invalid choice: 'frobnicate'"),
    ("ls-unknown-registry", ["ls", "gizmos"], "bench ls: argument what: invalid choice"),
    ("data-unknown-source", ["data", "fetch", "--source", "nope"], "unknown data source 'nope'"),
    # --- bench prune: names and budgets
    ("prune-unknown-method", [*PRUNE, "--method", "shortgtp", "--layers", "1", "--out", "p"], "did you mean shortgpt"),
    ("prune-unknown-param", [*PRUNE, "--method", "laco", "--layers", "1", "--param", "treshold=0.3", "--out", "p"],
     "unknown parameter of laco"),
    ("prune-param-of-paramless-method", [*SHORTGPT, "--param", "foo=1", "--out", "p"], "shortgpt takes no parameters"),
    ("prune-param-known-plural", [*PRUNE, "--method", "random", "--layers", "1", "--param", "zzz=1", "--out", "p"],
     "known parameters of random: seed"),
    ("prune-malformed-param", [*PRUNE, "--method", "laco", "--layers", "1", "--param", "threshold", "--out", "p"],
     "malformed --param"),
    ("prune-ratio-above-1", [*PRUNE, "--method", "shortgpt", "--ratio", "1.5", "--out", "p"], "outside (0, 1)"),
    ("prune-layers-leave-none", [*PRUNE, "--method", "shortgpt", "--layers", "4", "--out", "p"], "leaves no layer"),
    ("prune-layers-30", [*PRUNE, "--method", "random", "--layers", "30", "--out", "p"], "removing 30 layers leaves no layer"),
    ("prune-unknown-model", ["prune", "--model", "smollm2-13m", "--method", "last", "--layers", "1", "--out", "p"],
     "unknown model"),
    ("prune-missing-model-folder", ["prune", "--model", "./nope", "--method", "last", "--layers", "1", "--out", "p"],
     "no such file or folder"),
    ("prune-max-memory-bad-size", [*SHORTGPT, "--max-memory", "cpu=0", "--out", "p"], "is not a size"),
    ("prune-max-memory-absent-gpu", [*SHORTGPT, "--max-memory", "0=1GiB,3=1GiB", "--out", "p"],
     "--max-memory names GPU"),
    ("prune-unknown-dtype", [*SHORTGPT, "--dtype", "fp8", "--out", "p"], "unknown dtype"),
    ("prune-unknown-device", [*PRUNE, "--method", "last", "--layers", "1", "--device", "tpu", "--out", "p"],
     "unknown device"),
    ("prune-ratio-not-a-number", [*PRUNE, "--method", "shortgpt", "--ratio", "abc", "--out", "p"], "invalid float value"),
    ("prune-no-budget", [*PRUNE, "--method", "shortgpt", "--out", "p"], "one of the arguments --ratio --layers is required"),
    ("prune-no-method-value", ["prune", "--method"], "argument --method: expected one argument (hint: see `bench prune --help`)"),
    ("prune-no-out", [*SHORTGPT], "the following arguments are required: --out"),
    # --- bench prune: inputs checked before the model loads (finding 5)
    ("prune-calib-missing", ["prune", "--model", "{model}", "--method", "shortgpt", "--layers", "1", "--calib",
                             "/nonexistent.txt", "--out", "p"], "calibration text source '/nonexistent.txt' is neither"),
    ("prune-calib-binary", ["prune", "--model", "{model}", "--method", "shortgpt", "--layers", "1", "--calib", "/bin/ls",
                            "--out", "p"], "calibration text file /bin/ls is not UTF-8 text"),
    ("prune-train-data-missing", [*PRUNE, "--method", "streamline", "--layers", "1", "--train-data", "nope.txt",
                                  "--out", "p"], "training text source 'nope.txt' is neither wikipedia nor c4"),
    ("prune-train-data-binary", [*PRUNE, "--method", "streamline", "--layers", "1", "--train-data", "{bin}",
                                 "--out", "p"], "training text file"),
    # --- bench prune --out: never destroys user data (finding 1), never writes where it cannot (finding 4)
    ("prune-out-user-folder-with-plan-json", [*SHORTGPT, "--out", "{notes}"], "holds files the harness did not write"),
    ("prune-out-user-folder-even-with-force", [*SHORTGPT, "--out", "{notes}", "--force"], "not even with --force"),
    ("prune-out-dot", [*SHORTGPT, "--out", "."], "is the current folder, which is never replaced"),
    ("prune-out-empty-string", [*SHORTGPT, "--out", ""], "--out is empty"),
    ("prune-out-dot-with-force", [*SHORTGPT, "--out", ".", "--force"], "not even with --force"),
    ("prune-out-parent", [*SHORTGPT, "--out", ".."], "a folder above the current one"),
    ("prune-out-home", [*SHORTGPT, "--out", "~"], "is your home folder"),
    ("prune-out-root", [*SHORTGPT, "--out", "/"], "is the root folder"),
    ("prune-out-model-itself", [*SHORTGPT, "--out", "{model}"], "is the model being pruned"),
    ("prune-out-edited-export", [*SHORTGPT, "--out", "{edited}"], "changed since it was written (README.md) (hint: pass --force"),
    ("prune-out-is-a-file", [*SHORTGPT, "--out", "{file}"], "is a file, not a folder"),
    ("prune-out-under-a-file", [*SHORTGPT, "--out", "{file}/sub"], "lies under the file"),
    ("prune-out-in-proc", [*SHORTGPT, "--out", "/proc/x"], "--out /proc/x is not writable"),
    # --- bench report / regress
    ("report-out-is-a-file", ["report", "--store", "{store}", "--out", "{file}"], "--out"),
    ("report-out-under-a-file", ["report", "--store", "{store}", "--out", "{file}/pages"], "lies under the file"),
    ("report-out-in-proc", ["report", "--store", "{store}", "--out", "/proc/x"], "is not writable"),
    ("report-store-is-a-file", ["report", "--store", "{file}", "--out", "pages"], "is a file, not a folder"),
    ("report-store-missing", ["report", "--store", "nostore", "--out", "pages"], "holds no records"),
    ("regress-baseline-missing", ["regress", "--store", "{store}", "--baseline", "none.json"], "no baseline at"),
    ("regress-baseline-not-json", ["regress", "--store", "{store}", "--baseline", "{file}"], "is not valid JSON"),
    ("regress-update-baseline-under-a-file", ["regress", "--update-baseline", "--store", "{store}", "--baseline",
                                              "{file}/b.json"], "lies under the file"),
    ("regress-update-baseline-is-a-folder", ["regress", "--update-baseline", "--store", "{store}", "--baseline",
                                             "{dir}"], "is a folder, not a file"),
    ("regress-update-baseline-in-proc", ["regress", "--update-baseline", "--store", "{store}", "--baseline",
                                         "/proc/x/b.json"], "is not writable"),
    ("regress-unknown-skip", ["regress", "--skip", "speed"], "--skip speed: no such kind of metric"),
]


REPO = Path(__file__).resolve().parent.parent
EXPORT_MARKER = ".layerprune-bench-export.json"  # bench.export_target.MARKER (spelled out: the table also
# measures checkouts that predate it)


def tree(*roots: Path) -> dict[str, str]:
    """Every file and folder under `roots`, with each file's sha256: what "nothing written" compares."""
    out = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_symlink() or path.is_dir():
                out[str(path)] = "link" if path.is_symlink() else "dir"
            else:
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def sandbox(work: Path, model: Path, corpus: Path, run_yaml) -> dict[str, str]:
    """The files the cases point at, inside `work` (the current folder while a case runs)."""
    (work / "afile").write_text("not a folder\n")
    (work / "binary.bin").write_bytes(bytes(range(256)) * 8)
    (work / "empty.txt").write_text("")
    (work / "emptydir").mkdir()
    (work / "bad.jsonl").write_text("[1, 2]\n")
    notes = work / "notes"
    notes.mkdir()
    (notes / "plan.json").write_text("{}\n")
    (notes / "thesis.tex").write_text("draft\n")
    edited = work / "old-export"
    edited.mkdir()
    (edited / "config.json").write_text("{}\n")
    (edited / "README.md").write_text("model card\n")
    files = {p.name: {"size": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
             for p in edited.iterdir()}
    (edited / EXPORT_MARKER).write_text(json.dumps({"written_by": "layerprune-bench", "files": files}))
    (edited / "README.md").write_text("model card, edited by hand\n")
    store = work / "onestore"  # one real record of the committed store
    committed = sorted((REPO / "reports" / "store" / "cells").glob("*/record.json"))[0]
    (store / "cells" / committed.parent.name).mkdir(parents=True)
    (store / "cells" / committed.parent.name / "record.json").write_bytes(committed.read_bytes())
    (work / "home").mkdir()
    run_yaml(work / "run.yaml")
    (work / "bad.yaml").write_text("models: [x\n  methods: ]\n")
    run_yaml(work / "unknown-key.yaml", evaluation={"limit": 3})
    run_yaml(work / "nested-key.yaml", eval={"limt": 3})
    run_yaml(work / "train-missing.yaml", methods=["streamline"], train={"source": "nope.txt"})
    return {"cfg": str(work / "run.yaml"), "model": str(model), "corpus": str(corpus), "file": str(work / "afile"),
            "bin": str(work / "binary.bin"), "empty": str(work / "empty.txt"), "dir": str(work / "emptydir"),
            "badjsonl": str(work / "bad.jsonl"), "notes": str(notes), "edited": str(edited), "store": str(store),
            "home": str(work / "home")}


def fill(argv: list[str], places: dict[str, str]) -> list[str]:
    return [a.format(**places) if "{" in a else a for a in argv]


class ModelLoaded(AssertionError):
    """Raised by the patched loader: a bad input must fail before any model loads."""


def measure(argv: list[str], roots: tuple[Path, ...], block_loads: bool = True) -> dict:
    """Run one case in-process; what a user would see and what changed on disk. With `block_loads` the model
    loader fails the case; without, it loads and the case runs on (to measure what a user sees)."""
    from bench import zoo
    from bench.cli import main

    before = tree(*roots)
    err, out = io.StringIO(), io.StringIO()
    loaded = []
    real_load = zoo.load

    def refuse_load(*args, **kwargs):
        loaded.append(args)
        if not block_loads:
            return real_load(*args, **kwargs)
        raise ModelLoaded("a model was loaded for a bad input")

    zoo.load = refuse_load
    rc, tb = None, False
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                rc = main(argv)
            except SystemExit as exc:
                rc = exc.code
            except BaseException:  # what a user would see as a traceback
                tb = True
                err.write(traceback.format_exc())
    finally:
        zoo.load = real_load
    after = tree(*roots)
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    changed = sorted(set(before.items()) ^ set(after.items()))
    return {"rc": rc, "lines": lines, "traceback": tb or any("Traceback" in line for line in lines),
            "loaded": bool(loaded), "changed": sorted({path for path, _ in changed}), "stdout": out.getvalue()}


def one_line_with_hint(lines: list[str]) -> bool:
    import re

    return len(lines) == 1 and re.fullmatch(r"error: .+ \(hint: .+\)", lines[0]) is not None


def summarize(results: dict[str, dict], fragments: dict[str, str]) -> dict[str, int]:
    return {
        "cases": len(results),
        "exit 2": sum(r["rc"] == 2 for r in results.values()),
        "exit 2, one line with a hint": sum(r["rc"] == 2 and one_line_with_hint(r["lines"]) for r in results.values()),
        "message as expected": sum(any(fragments[k] in line for line in r["lines"]) for k, r in results.items()),
        "tracebacks": sum(r["traceback"] for r in results.values()),
        "model loaded": sum(r["loaded"] for r in results.values()),
        "cases that changed files": sum(bool(r["changed"]) for r in results.values()),
        "all clean": sum(r["rc"] == 2 and one_line_with_hint(r["lines"]) and not r["traceback"] and not r["loaded"]
                         and not r["changed"] and any(fragments[k] in line for line in r["lines"])
                         for k, r in results.items()),
    }


def run_table(base: Path, model: Path, corpus: Path, run_yaml) -> dict[str, dict]:
    """Every case, each in a fresh sandbox under `base` (used by the before/after measurement)."""
    results = {}
    cwd = os.getcwd()
    for i, (case, argv, _) in enumerate(CASES):
        work = base / f"{i:03d}"
        work.mkdir(parents=True)
        places = sandbox(work, model, corpus, run_yaml)
        os.environ["HOME"] = places["home"]
        os.chdir(work)
        try:
            results[case] = measure(fill(argv, places), (work, model.parent), block_loads=False)
        finally:
            os.chdir(cwd)
    return results
