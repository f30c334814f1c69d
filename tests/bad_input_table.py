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
import functools
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

# (id, argv, a fragment of the one stderr line), by group (the groups of the before/after counts)
SECTIONS: dict[str, list[tuple[str, list[str], str]]] = {
    "bench run: names, budgets, parameters, YAML (the suite's earlier cases, kept)": [
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
        ("run-malformed-yaml", ["run", "--config", "bad.yaml", "--store", "store"], "is not valid YAML at line"),
        ("run-unknown-key", ["run", "--config", "unknown-key.yaml", "--store", "store"],
         "unknown key 'evaluation' (hint: did you mean eval"),
        ("run-unknown-nested-key", ["run", "--config", "nested-key.yaml", "--store", "store"],
         "unknown key 'eval.limt' (hint: did you mean limit"),
        ("run-config-missing", ["run", "--config", "nope.yaml", "--store", "store"], "cannot read config file"),
        ("run-config-is-a-folder", ["run", "--config", "{dir}", "--store", "store"], "cannot read config file"),
    ],
    'bench run: paths (findings 4 and 5)': [
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
        # a method that trains only with LoRA healing asked for, by each of the ways a run gives parameters
        ("run-lora-heal-train-data-missing", ["run", "--config", "train-missing.yaml", "--store", "store", "--methods",
                                              "shortgpt", "--param", "shortgpt.heal=lora"],
         "training text source 'nope.txt' is neither"),
        ("run-lora-heal-yaml-train-data-missing", ["run", "--config", "heal-lora.yaml", "--store", "store"],
         "training text source 'nope.txt' is neither"),
        ("run-lora-heal-method-params-train-data-missing", ["run", "--config", "heal-lora-defaults.yaml", "--store",
                                                            "store"], "training text source 'nope.txt' is neither"),
        ("run-slurm-without-slurm", [*RUN, "--executor", "slurm"], "no `sbatch` is on PATH (hint: run from a Slurm login node"),
        ("run-cache-dir-is-a-file", ["--cache-dir", "{file}", *RUN], "--cache-dir"),
    ],
    'argparse (finding 7: one line and a hint, not a usage block)': [
        ("run-unknown-option", [*RUN, "--bogus"], "bench run: unrecognized arguments: --bogus (hint: see `bench run --help`)"),
        ("run-unknown-executor", [*RUN, "--executor", "cloud"], "argument --executor: invalid choice"),
        ("run-unknown-engine-states", [*RUN, "--engine-states", "disk"], "argument --engine-states: invalid choice"),
        ("run-fewshot-not-int", [*RUN, "--num-fewshot", "some"], "argument --num-fewshot: invalid int value"),
        ("no-such-command", ["frobnicate"], "invalid choice: 'frobnicate'"),
        ("ls-unknown-registry", ["ls", "gizmos"], "bench ls: argument what: invalid choice"),
        ("data-unknown-source", ["data", "fetch", "--source", "nope"], "unknown data source 'nope'"),
    ],
    'bench prune: names and budgets': [
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
        ("prune-unknown-dtype", [*SHORTGPT, "--dtype", "fp8", "--out", "p"], "unknown dtype"),
        ("prune-unknown-device", [*PRUNE, "--method", "last", "--layers", "1", "--device", "tpu", "--out", "p"],
         "unknown device"),
        ("prune-ratio-not-a-number", [*PRUNE, "--method", "shortgpt", "--ratio", "abc", "--out", "p"], "invalid float value"),
        ("prune-no-budget", [*PRUNE, "--method", "shortgpt", "--out", "p"], "one of the arguments --ratio --layers is required"),
        ("prune-no-method-value", ["prune", "--method"], "argument --method: expected one argument (hint: see `bench prune --help`)"),
        ("prune-no-out", [*SHORTGPT], "the following arguments are required: --out"),
    ],
    'bench prune: inputs checked before the model loads (finding 5)': [
        ("prune-calib-missing", ["prune", "--model", "{model}", "--method", "shortgpt", "--layers", "1", "--calib",
                                 "/nonexistent.txt", "--out", "p"], "calibration text source '/nonexistent.txt' is neither"),
        ("prune-calib-binary", ["prune", "--model", "{model}", "--method", "shortgpt", "--layers", "1", "--calib", "/bin/ls",
                                "--out", "p"], "calibration text file /bin/ls is not UTF-8 text"),
        ("prune-train-data-missing", [*PRUNE, "--method", "streamline", "--layers", "1", "--train-data", "nope.txt",
                                      "--out", "p"], "training text source 'nope.txt' is neither wikipedia nor c4"),
        ("prune-train-data-binary", [*PRUNE, "--method", "streamline", "--layers", "1", "--train-data", "{bin}",
                                     "--out", "p"], "training text file"),
    ],
    'bench prune --out: never destroys user data (finding 1), never writes where it cannot (finding 4)': [
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
    ],
    'bench report / regress': [
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
    ],
}
REGRESS = ["regress", "--store", "{store}"]
UPDATE = [*REGRESS, "--update-baseline", "--baseline"]

# issue 25 (trust, round 3): the cases its probe found, and their neighbours
SECTIONS.update({
    "options as written (no prefix matching)": [
        ("abbrev-run-task", [*RUN, "--task", "piqa"], "unrecognized arguments: --task piqa"),
        ("abbrev-run-layer", [*RUN, "--layer", "1"], "unrecognized arguments: --layer 1"),
        ("abbrev-run-calib-sample", [*RUN, "--calib-sample", "4"], "unrecognized arguments: --calib-sample 4"),
        ("abbrev-run-report", [*RUN, "--report", "pages"], "unrecognized arguments: --report pages"),
        ("abbrev-run-no-rep", [*RUN, "--no-rep"], "unrecognized arguments: --no-rep"),
        ("abbrev-run-lim", [*RUN, "--lim", "5"], "unrecognized arguments: --lim 5"),
        ("abbrev-run-dev", [*RUN, "--dev", "cpu"], "unrecognized arguments: --dev cpu"),
        ("abbrev-run-conf", ["run", "--conf", "{cfg}", "--store", "store"], "unrecognized arguments: --conf"),
        ("abbrev-run-sto", ["run", "--config", "{cfg}", "--sto", "store"], "unrecognized arguments: --sto store"),
        ("abbrev-run-batch", [*RUN, "--batch", "2"], "unrecognized arguments: --batch 2"),
        ("abbrev-run-for", [*RUN, "--for"], "unrecognized arguments: --for"),
        ("abbrev-prune-rat", [*SHORTGPT, "--rat", "0.1", "--out", "p"], "unrecognized arguments: --rat 0.1"),
        ("abbrev-prune-lay", [*PRUNE, "--method", "last", "--ratio", "0.25", "--lay", "1", "--out", "p"],
         "unrecognized arguments: --lay 1"),
        ("abbrev-prune-meth", [*SHORTGPT, "--meth", "last", "--out", "p"], "unrecognized arguments: --meth last"),
        ("abbrev-prune-fo", [*SHORTGPT, "--out", "p", "--fo"], "unrecognized arguments: --fo"),
        ("abbrev-prune-train", [*SHORTGPT, "--out", "p", "--train", "c4"], "unrecognized arguments: --train c4"),
        ("abbrev-regress-update", [*REGRESS, "--update"], "unrecognized arguments: --update"),
        ("abbrev-regress-base", [*REGRESS, "--base", "b.json"], "unrecognized arguments: --base b.json"),
        ("abbrev-regress-log", [*REGRESS, "--log", "0.1"], "unrecognized arguments: --log 0.1"),
        ("abbrev-regress-allow", [*REGRESS, "--allow"], "unrecognized arguments: --allow"),
        ("abbrev-report-no-fig", ["report", "--store", "{store}", "--out", "pages", "--no-fig"],
         "unrecognized arguments: --no-fig"),
        ("abbrev-report-st", ["report", "--st", "{store}", "--out", "pages"], "unrecognized arguments"),
        ("abbrev-data-sour", ["data", "fetch", "--sour", "nope"], "unrecognized arguments: --sour nope"),
        ("abbrev-ls-js", ["ls", "methods", "--js"], "unrecognized arguments: --js"),
        ("abbrev-top-cache", ["--cache", "{dir}", "ls", "methods"], "invalid choice"),
    ],
    "bench run: each entry once": [
        ("dup-models", [*RUN, "--models", "{model},{model}"], "is listed twice in models"),
        ("dup-models-zoo", [*RUN, "--models", "smollm2-135m,smollm2-135m"], "'smollm2-135m' is listed twice"),
        ("dup-ratios", [*RUN, "--ratios", "0.125,0.125"], "ratio 0.125 is listed twice in ratios"),
        ("dup-ratios-spelled-apart", [*RUN, "--ratios", "0.125,0.1250"], "ratio 0.125 is listed twice"),
        ("dup-layers", [*RUN, "--layers", "1,1"], "layer budget 1 is listed twice in layers"),
        ("dup-seeds", [*RUN, "--seed", "1,1"], "seed 1 is listed twice in seeds"),
        ("dup-tasks", [*RUN, "--tasks", "piqa,piqa"], "task 'piqa' is listed twice in eval.tasks"),
        ("dup-ppl", [*RUN, "--ppl", "{corpus},{corpus}"], "is listed twice in eval.perplexity.corpora"),
        ("dup-methods-apart", [*RUN, "--methods", "shortgpt,last,shortgpt"], "listed twice"),
        ("dup-method-seeds", ["run", "--config", "dup-method-seeds.yaml", "--store", "store"],
         "seed 0 is listed twice in method_seeds.last"),
        ("dup-yaml-key", ["run", "--config", "dup-key.yaml", "--store", "store"],
         "key 'models' is written twice (first at line 1) (hint: write each key once)"),
        ("dup-yaml-nested-key", ["run", "--config", "dup-nested.yaml", "--store", "store"],
         "key 'limit' is written twice"),
    ],
    "bench run: a run file is checked whole, and sized": [
        ("yaml-binary", ["run", "--config", "{bin}", "--store", "store"], "is not UTF-8 text"),
        ("yaml-fifo-no-writer", ["run", "--config", "{fifo}", "--store", "store"], "holds no text"),
        ("yaml-device", ["run", "--config", "/dev/zero", "--store", "store"], "is not a regular file"),
        ("yaml-alias-bomb", ["run", "--config", "bomb.yaml", "--store", "store"], "expands to more than 1,000,000"),
        ("yaml-alias-bomb-small-list", ["run", "--config", "bomb-models.yaml", "--store", "store"],
         "must be a list of model names"),
        ("yaml-a-list", ["run", "--config", "a-list.yaml", "--store", "store"], "must hold a mapping of run options"),
        ("yaml-limit-wrong-type-under-flag", ["run", "--config", "limit-text.yaml", "--store", "store", "--limit", "5"],
         "eval.limit must be a number, not 'lots'"),
        ("yaml-ratios-wrong-type-under-flag", ["run", "--config", "ratios-text.yaml", "--store", "store", "--ratios",
                                               "0.25"], "ratios must be a number, not 'abc'"),
        ("yaml-layers-wrong-type-under-flag", ["run", "--config", "layers-text.yaml", "--store", "store", "--layers",
                                               "1"], "layers must be a number, not 'x'"),
        ("yaml-seeds-wrong-type-under-flag", ["run", "--config", "seeds-text.yaml", "--store", "store", "--seed",
                                              "0"], "seeds must be a number, not 'x'"),
        ("yaml-limit-zero-under-flag", ["run", "--config", "limit-zero.yaml", "--store", "store", "--limit", "5"],
         "limit 0 must be at least 1"),
        ("yaml-models-a-mapping", ["run", "--config", "models-map.yaml", "--store", "store"],
         "models must be a list of model names"),
        ("yaml-eval-a-number", ["run", "--config", "eval-number.yaml", "--store", "store"], "eval must be a mapping"),
        ("yaml-100000-models", ["run", "--config", "many-models.yaml", "--store", "store"],
         "models lists 100,000 entries, more than the 1,000 a run takes"),
        ("yaml-300000-ratios", ["run", "--config", "many-ratios.yaml", "--store", "store"],
         "ratios lists 300,000 entries, more than the 1,000"),
        ("yaml-2000-seeds", ["run", "--config", "many-seeds.yaml", "--store", "store"], "seeds lists 2,000 entries"),
        ("yaml-1001-tasks", ["run", "--config", "many-tasks.yaml", "--store", "store"], "eval.tasks lists 1,001"),
        ("yaml-too-many-cells", ["run", "--config", "many-cells.yaml", "--store", "store"],
         "cells, more than the 100,000 one run takes"),
        ("yaml-calib-seq-len-beyond-context", ["run", "--config", "long-calib.yaml", "--store", "store"],
         "calib.seq_len 1000000 is longer than the context"),
        ("yaml-calib-samples-text", ["run", "--config", "calib-samples-text.yaml", "--store", "store"],
         "calib.n_samples must be a number"),
        ("yaml-param-a-list", ["run", "--config", "param-list.yaml", "--store", "store"],
         "methods[laco].params.threshold must be a single value, not [1, 2]"),
    ],
    "bench run: numbers in range": [
        ("seed-overflow", [*RUN, "--seed", "99999999999999999999999"], "--seed 99999999999999999999999 is outside"),
        ("seed-2-to-the-32", [*RUN, "--seed", "4294967296"], "is outside 0 .. 4294967295"),
        ("seed-negative", [*RUN, "--seed", "-1"], "--seed -1 is outside"),
        ("seed-one-of-several-overflows", [*RUN, "--seed", "0,1e30"], "seeds must be a"),
        ("subset-seed-negative", [*RUN, "--subset-seed", "-1"], "--subset-seed -1 is outside"),
        ("limit-negative", [*RUN, "--limit", "-5"], "limit -5 must be at least 1"),
        ("limit-fraction", [*RUN, "--limit", "1.5"], "eval.limit must be a whole number"),
        ("ratio-nan", [*RUN, "--ratios", "nan"], "ratio nan is outside (0, 1)"),
        ("ratio-inf", [*RUN, "--ratios", "inf"], "ratio inf is outside (0, 1)"),
        ("ratio-negative", [*RUN, "--ratios", "-0.5"], "ratio -0.5 is outside (0, 1)"),
        ("ratio-one-of-several-bad", [*RUN, "--ratios", "0.1,abc"], "ratios must be a number, not 'abc'"),
        ("layers-negative", [*RUN, "--layers", "-1"], "layer budget -1 must be at least 1"),
        ("calib-samples-negative", [*RUN, "--calib-samples", "-1"], "n_samples >= 1"),
        ("batch-size-negative", [*RUN, "--batch-size", "-3"], "batch_size >= 1"),
        ("num-fewshot-negative", [*RUN, "--num-fewshot", "-1"], "num_fewshot >= 0"),
    ],
    "bench run: budgets and inputs checked before the model loads": [
        ("run-ratio-0.999", [*RUN, "--ratios", "0.999"], "ratio 0.999 means removing 5 of the 4 layers"),
        ("run-ratio-0.8", [*RUN, "--ratios", "0.8"], "leaves no layer (hint: use a ratio below"),
        ("run-one-ratio-of-two-too-big", [*RUN, "--ratios", "0.25,0.9"], "ratio 0.9 means removing"),
        ("run-one-layer-budget-of-two-too-big", [*RUN, "--layers", "1,4"], "removing 4 layers leaves no layer"),
        ("run-calib-3-bytes", [*RUN, "--methods", "shortgpt", "--calib", "{tiny3}"],
         "holds 3 bytes of text, too little for 4 windows of 32 tokens"),
        ("run-calib-too-many-samples", [*RUN, "--methods", "shortgpt", "--calib-samples", "100000"],
         "too little for 100000 windows"),
        ("run-calib-fifo-no-writer", [*RUN, "--methods", "shortgpt", "--calib", "{fifo}"],
         "holds no text (nothing was written to it)"),
        ("run-calib-device", [*RUN, "--methods", "shortgpt", "--calib", "/dev/zero"], "is not a regular file"),
        ("run-ppl-fifo-no-writer", [*RUN, "--ppl", "{fifo}"], "perplexity corpus pipe"),
        ("run-ppl-device", [*RUN, "--ppl", "/dev/null"], "is not a regular file"),
        ("run-ppl-folder", [*RUN, "--ppl", "{dir}"], "is a folder"),
        ("run-train-fifo-no-writer", ["run", "--config", "train-fifo.yaml", "--store", "store"], "training text pipe"),
    ],
    "bench run: a store and pages of someone else's are not overwritten": [
        ("store-foreign-results-jsonl", ["run", "--config", "{cfg}", "--store", "{userstore}"],
         "holds results.jsonl that no result store wrote"),
        ("store-foreign-results-jsonl-force", ["run", "--config", "{cfg}", "--store", "{userstore}", "--force"],
         "holds results.jsonl that no result store wrote"),
        ("store-foreign-results-parquet", ["run", "--config", "{cfg}", "--store", "{parquetstore}"],
         "holds results.parquet that no result store wrote"),
        ("store-cells-is-a-file", ["run", "--config", "{cfg}", "--store", "{cellsfile}"],
         "is not laid out as a result store: cells is a file"),
        ("store-locks-is-a-file", ["run", "--config", "{cfg}", "--store", "{locksfile}"], "locks is a file"),
        ("store-index-is-a-folder", ["run", "--config", "{cfg}", "--store", "{indexdir}"],
         "results.jsonl is a folder"),
        ("store-lock-is-a-folder", ["run", "--config", "{cfg}", "--store", "{lockdir}"], ".lock is a folder"),
        ("run-reports-user-leaderboard", [*RUN, "--reports", "{docs}"],
         "holds leaderboard.md, which `bench report` did not write"),
        ("run-default-reports-user-leaderboard", ["run", "--config", "{cfg}", "--store", "{docsstore}"],
         "holds leaderboard.md, which `bench report` did not write"),
        ("run-reports-user-figures", [*RUN, "--reports", "{figdir}"], "holds figures, which `bench report` did not"),
    ],
    "bench prune: checked before the model loads": [
        ("prune-ratio-0.999", [*PRUNE, "--method", "shortgpt", "--ratio", "0.999", "--out", "p"],
         "ratio 0.999 means removing 5 of the 4 layers"),
        ("prune-ratio-0.8", [*PRUNE, "--method", "random", "--ratio", "0.8", "--out", "p"], "leaves no layer"),
        ("prune-calib-seq-len-1000000", [*PRUNE[:-4], "--method", "shortgpt", "--layers", "1", "--calib-seq-len",
                                         "1000000", "--out", "p"], "--calib-seq-len 1000000 is longer than the context"),
        ("prune-calib-seq-len-257", [*PRUNE[:-4], "--method", "shortgpt", "--layers", "1", "--calib-seq-len", "257",
                                     "--out", "p"], "(256 tokens)"),
        ("prune-calib-seq-len-1", [*PRUNE[:-4], "--method", "shortgpt", "--layers", "1", "--calib-seq-len", "1",
                                   "--out", "p"], "seq_len >= 2"),
        ("prune-calib-samples-0", [*SHORTGPT, "--calib-samples", "0", "--out", "p"], "n_samples >= 1"),
        ("prune-calib-batch-0", [*SHORTGPT, "--batch-size", "0", "--out", "p"], "batch_size >= 1"),
        ("prune-calib-3-bytes", ["prune", "--model", "{model}", "--method", "shortgpt", "--layers", "1", "--calib",
                                 "{tiny3}", "--out", "p"], "holds 3 bytes of text, too little for 32 windows"),
        ("prune-calib-too-many-samples", ["prune", "--model", "{model}", "--calib", "{corpus}", "--calib-samples",
                                          "100000", "--calib-seq-len", "16", "--method", "shortgpt", "--layers", "1",
                                          "--out", "p"],
         "too little for 100000 windows of 16 tokens"),
        ("prune-calib-fifo-no-writer", ["prune", "--model", "{model}", "--method", "shortgpt", "--layers", "1",
                                        "--calib", "{fifo}", "--out", "p"], "calibration text pipe"),
        ("prune-calib-device", ["prune", "--model", "{model}", "--method", "shortgpt", "--layers", "1", "--calib",
                                "/dev/zero", "--out", "p"], "is not a regular file"),
        ("prune-train-fifo-no-writer", [*PRUNE, "--method", "streamline", "--layers", "1", "--train-data", "{fifo}",
                                        "--out", "p"], "training text pipe"),
        ("prune-seed-overflow", [*SHORTGPT, "--seed", "99999999999999999999999", "--out", "p"], "is outside 0 .."),
        ("prune-seed-negative", [*SHORTGPT, "--seed", "-1", "--out", "p"], "--seed -1 is outside"),
        ("prune-out-user-results", [*SHORTGPT, "--out", "{userstore}"], "holds files the harness did not write"),
    ],
    "bench report: a user's pages are not overwritten": [
        ("report-out-user-leaderboard", ["report", "--store", "{store}", "--out", "{docs}"],
         "holds leaderboard.md, which `bench report` did not write; it is not overwritten (hint: give --out another "
         "folder, or pass --force"),
        ("report-out-user-paper-tables", ["report", "--store", "{store}", "--out", "{papers}"],
         "holds paper-tables.md, which"),
        ("report-out-user-figures", ["report", "--store", "{store}", "--out", "{figdir}"], "holds figures, which"),
        ("report-out-leaderboard-is-a-folder", ["report", "--store", "{store}", "--out", "{lbdir}"],
         "holds leaderboard.md, which"),
        ("report-out-figures-is-a-file", ["report", "--store", "{store}", "--out", "{figfile}"], "holds figures"),
        ("report-out-user-leaderboard-no-figures", ["report", "--store", "{store}", "--out", "{docs}", "--no-figures"],
         "holds leaderboard.md"),
        ("report-store-foreign-index", ["report", "--store", "{userstore}", "--out", "pages"],
         "holds results.jsonl that no result store wrote"),
        ("report-store-cells-is-a-file", ["report", "--store", "{cellsfile}", "--out", "pages"], "cells is a file"),
    ],
    "bench regress: a user's file is not overwritten, tolerances are numbers": [
        ("regress-update-over-user-json", [*UPDATE, "{notesjson}"],
         "notes.json exists and is not a baseline; it is not overwritten (hint: give --baseline a new file, or pass "
         "--force"),
        ("regress-update-over-user-text", [*UPDATE, "{file}"], "exists and is not a baseline"),
        ("regress-update-over-binary", [*UPDATE, "{bin}"], "exists and is not a baseline"),
        ("regress-update-over-empty-file", [*UPDATE, "{empty}"], "exists and is not a baseline"),
        ("regress-loglik-nan", [*REGRESS, "--loglik", "nan"], "argument --loglik: nan is not a tolerance"),
        ("regress-loglik-negative", [*REGRESS, "--loglik", "-1"], "argument --loglik: -1 is not a tolerance"),
        ("regress-loglik-inf", [*REGRESS, "--loglik", "inf"], "argument --loglik: inf is not a tolerance"),
        ("regress-loglik-text", [*REGRESS, "--loglik", "abc"], "argument --loglik: 'abc' is not a number"),
        ("regress-nll-nan", [*REGRESS, "--nll", "nan"], "argument --nll: nan is not a tolerance"),
        ("regress-bpb-negative", [*REGRESS, "--bpb", "-0.1"], "argument --bpb: -0.1 is not a tolerance"),
        ("regress-kl-nan", [*REGRESS, "--kl", "NaN"], "argument --kl: NaN is not a tolerance"),
        ("regress-acc-points-negative", [*REGRESS, "--acc-points", "-1"], "argument --acc-points: -1 is not"),
        ("regress-latency-pct-nan", [*REGRESS, "--latency-pct", "nan"], "argument --latency-pct: nan is not"),
        ("regress-baseline-schema-text", [*REGRESS, "--baseline", "{schematwo}"], "is not a schema-2 baseline"),
        ("regress-baseline-cells-wrong-types", [*REGRESS, "--baseline", "{badcells}"], "cell 1 is not"),
        ("regress-store-foreign-index", ["regress", "--store", "{userstore}", "--baseline", "{badcells}"],
         "holds results.jsonl that no result store wrote"),
        ("regress-store-cells-is-a-file", ["regress", "--store", "{cellsfile}"], "cells is a file"),
    ],
})
SECTIONS["--max-memory and --offload-dir (checked before a model loads)"] = [
    ("run-max-memory-not-pairs", [*RUN, "--max-memory", "2GiB"], "--max-memory entry '2GiB' is not DEVICE=SIZE"),
    ("run-max-memory-bad-size", [*RUN, "--max-memory", "cpu=lots"], "--max-memory size 'lots' for cpu is not a size"),
    ("run-max-memory-unknown-device", [*RUN, "--max-memory", "tpu=2GiB"], "--max-memory names an unknown device"),
    ("run-max-memory-absent-gpu", [*RUN, "--max-memory", "7=70GiB"], "--max-memory names GPU 7 but this machine"),
    ("run-offload-dir-is-a-file", [*RUN, "--max-memory", "cpu=1GiB", "--offload-dir", "{file}"],
     "(hint: give --offload-dir a folder"),
    ("prune-max-memory-bad-size", [*SHORTGPT, "--max-memory", "cpu=0", "--out", "p"], "is not a size"),
    ("prune-max-memory-absent-gpu", [*SHORTGPT, "--max-memory", "0=1GiB,3=1GiB", "--out", "p"],
     "--max-memory names GPU"),
]
CASES: list[tuple[str, list[str], str]] = [case for cases in SECTIONS.values() for case in cases]


REPO = Path(__file__).resolve().parent.parent
EXPORT_MARKER = ".layerprune-bench-export.json"  # bench.models.export_target.MARKER (spelled out: the table also
# measures checkouts that predate it)


def tree(*roots: Path) -> dict[str, str]:
    """Every file and folder under `roots`, with each file's sha256: what "nothing written" compares."""
    out = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_symlink() or path.is_dir():
                out[str(path)] = "link" if path.is_symlink() else "dir"
            elif not path.is_file():  # a FIFO: reading it would wait for a writer
                out[str(path)] = "special"
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
    run_yaml(work / "heal-lora.yaml", methods=[{"name": "shortgpt", "params": {"heal": "lora"}}],
             train={"source": "nope.txt"})
    run_yaml(work / "heal-lora-defaults.yaml", methods=["shortgpt"], method_params={"shortgpt": {"heal": "lora"}},
             train={"source": "nope.txt"})
    places = {"cfg": str(work / "run.yaml"), "model": str(model), "corpus": str(corpus), "file": str(work / "afile"),
              "bin": str(work / "binary.bin"), "empty": str(work / "empty.txt"), "dir": str(work / "emptydir"),
              "badjsonl": str(work / "bad.jsonl"), "notes": str(notes), "edited": str(edited), "store": str(store),
              "home": str(work / "home")}
    return {**places, **_round_3(work, run_yaml)}


def _folder(path: Path, files: dict[str, str | None]) -> str:
    """A folder holding `files` (name -> text; None: a subfolder)."""
    path.mkdir()
    for name, text in files.items():
        if text is None:
            (path / name).mkdir(parents=True)
        else:
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_text(text)
    return str(path)


@functools.cache
def _big_run_files() -> dict[str, str]:
    """Run files of absurd sizes (made once: every sandbox writes them)."""
    return {
        "many-models.yaml": "models: [" + ", ".join(f"m{i}" for i in range(100_000)) + "]\n",
        "many-ratios.yaml": "ratios: [" + ", ".join(f"{i / 300_001:.9f}" for i in range(1, 300_001)) + "]\n",
        "many-seeds.yaml": "seeds: [" + ", ".join(map(str, range(2000))) + "]\n",
        "many-tasks.yaml": "eval: {tasks: [" + ", ".join(f"t{i}" for i in range(1001)) + "]}\n",
        "many-cells.yaml": "methods: [last, random]\nratios: [" + ", ".join(f"{i / 1000:g}" for i in range(1, 1000))
        + "]\nseeds: [" + ", ".join(map(str, range(60))) + "]\n",
    }


def _round_3(work: Path, run_yaml) -> dict[str, str]:
    """The files of issue 25's cases: a FIFO nobody writes to, a 3-byte text, folders of a user's own
    results.jsonl, leaderboard.md or figures, stores laid out wrong, baselines of the wrong shape, run files
    with keys written twice, alias bombs, wrong types and absurd sizes."""
    os.mkfifo(work / "fifo")
    (work / "tiny3.txt").write_text("abc")
    (work / "notes.json").write_text('{"todo": ["write the thesis"]}\n')
    (work / "schema-two.json").write_text('{"schema": "two", "cells": []}\n')
    (work / "bad-cells.json").write_text('{"schema": 2, "cells": [1, "x"]}\n')
    mine = '{"run": "mine", "loss": 0.5}\n'
    page = "# My leaderboard\n\nhand-written notes\n"
    places = {
        "fifo": work / "fifo", "tiny3": work / "tiny3.txt", "notesjson": work / "notes.json",
        "schematwo": work / "schema-two.json", "badcells": work / "bad-cells.json",
        "userstore": _folder(work / "ud", {"results.jsonl": mine, "thesis.tex": "draft\n"}),
        "parquetstore": _folder(work / "pq", {"results.parquet": "PAR1 not really\n"}),
        "cellsfile": _folder(work / "st", {"cells": "a file\n"}),
        "locksfile": _folder(work / "st-locks", {"locks": "a file\n"}),
        "indexdir": _folder(work / "st-index", {"results.jsonl": None}),
        "lockdir": _folder(work / "st-lock", {".lock": None}),
        "docs": _folder(work / "docs", {"leaderboard.md": page}),
        "papers": _folder(work / "papers", {"paper-tables.md": page}),
        "figdir": _folder(work / "figs", {"figures/plot.png": "my own figure\n"}),
        "lbdir": _folder(work / "lbdir", {"leaderboard.md": None}),
        "figfile": _folder(work / "figfile", {"figures": "a file\n"}),
        "docsstore": _folder(work / "docsstore", {"reports/leaderboard.md": page}),
    }
    text = {**_big_run_files(), **{
        "dup-key.yaml": "models: [a]\nmodels: [b]\n",
        "dup-nested.yaml": "eval:\n  limit: 3\n  limit: 4\n",
        "bomb.yaml": "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
            f"{b}: &{b} [{', '.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True))
        + "models: *i\n",
        "bomb-models.yaml": "models: [&a [[x, x], [x, x]], *a, *a]\n",
        "a-list.yaml": "- models\n- methods\n",
        "models-map.yaml": "models: {a: 1}\n",
        "eval-number.yaml": "eval: 5\n",
    }}
    for name, body in text.items():
        (work / name).write_text(body)
    run_yaml(work / "dup-method-seeds.yaml", methods=["last"], method_seeds={"last": [0, 0]})
    run_yaml(work / "limit-text.yaml", eval={"limit": "lots"})
    run_yaml(work / "limit-zero.yaml", eval={"limit": 0})
    run_yaml(work / "ratios-text.yaml", ratios=["abc"])
    run_yaml(work / "layers-text.yaml", layers=["x"])
    run_yaml(work / "seeds-text.yaml", seeds=["x"])
    run_yaml(work / "long-calib.yaml", methods=["shortgpt"], calib={"seq_len": 1_000_000})
    run_yaml(work / "calib-samples-text.yaml", calib={"n_samples": "many"})
    run_yaml(work / "param-list.yaml", methods=[{"name": "laco", "params": {"threshold": [1, 2]}}])
    run_yaml(work / "train-fifo.yaml", methods=["streamline"], train={"source": str(work / "fifo")})
    return {k: str(v) for k, v in places.items()}


def fill(argv: list[str], places: dict[str, str]) -> list[str]:
    return [a.format(**places) if "{" in a else a for a in argv]


class ModelLoaded(AssertionError):
    """Raised by the patched loader: a bad input must fail before any model loads."""


def measure(argv: list[str], roots: tuple[Path, ...], block_loads: bool = True) -> dict:
    """Run one case in-process; what a user would see and what changed on disk. With `block_loads` the model
    loader fails the case; without, it loads and the case runs on (to measure what a user sees)."""
    from bench.cli import main
    from bench.models import zoo

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


def clean(result: dict, fragment: str | None = None) -> bool:
    """Exit 2, one line with a hint, no traceback, no model loaded, nothing changed (and, given a fragment,
    the line says it)."""
    return (result["rc"] == 2 and one_line_with_hint(result["lines"]) and not result["traceback"]
            and not result["loaded"] and not result["changed"]
            and (fragment is None or any(fragment in line for line in result["lines"])))


def by_group(base: Path, model: Path, corpus: Path, run_yaml, timeout_s: int = 60) -> dict[str, dict[str, int]]:
    """Every case in a fresh sandbox, in this process, with the loader blocked (a loaded model fails the case)
    and a per-case alarm (a case that blocks, a FIFO read on an older checkout, counts as not clean): per
    group, the cases, those clean whatever their message, and those clean with the expected message. Run it
    against any checkout: `PYTHONPATH=<checkout>:tests python tests/bad_input_table.py`."""
    import signal

    class Hung(BaseException):  # not caught by a cell's `except Exception`
        pass

    def alarm(*_):
        raise Hung

    signal.signal(signal.SIGALRM, alarm)
    cwd, out = os.getcwd(), {}
    for g, (group, cases) in enumerate(SECTIONS.items()):
        row = out.setdefault(group, {"cases": 0, "clean": 0, "clean, message as expected": 0})
        for i, (case, argv, fragment) in enumerate(cases):
            work = base / f"{g:02d}-{i:03d}"
            work.mkdir(parents=True)
            places = sandbox(work, model, corpus, run_yaml)
            os.environ["HOME"] = places["home"]
            os.chdir(work)
            signal.alarm(timeout_s)
            try:
                result = measure(fill(argv, places), (work, model.parent))
            except Hung:
                result = {"rc": None, "lines": ["(blocked)"], "traceback": False, "loaded": False, "changed": []}
            finally:
                signal.alarm(0)
                os.chdir(cwd)
            row["cases"] += 1
            row["clean"] += clean(result)
            row["clean, message as expected"] += clean(result, fragment)
            print(f"{case}: {'clean' if clean(result, fragment) else 'NOT clean'}: {result['lines'][-1:]}",
                  flush=True)
    return out


if __name__ == "__main__":  # the before/after counts by group, for the checkout first on PYTHONPATH
    import sys
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    from test_runner_fixtures import TinyEnv
    from tiny import CORPUS, tiny_model

    os.environ.setdefault("BENCH_CACHE_DIR", str(Path.home() / ".cache" / "layerprune-bench"))
    root = Path(tempfile.mkdtemp(prefix="bad-input-"))
    tiny, tok = tiny_model("llama", n_layers=4)
    tiny.save_pretrained(root / "tiny-llama")
    tok.save_pretrained(root / "tiny-llama")
    (root / "corpus.txt").write_text("\n\n".join(CORPUS))
    env = TinyEnv(root / "tiny-llama", root / "corpus.txt", root)
    table = by_group(root / "cases", env.model, env.corpus, env.config)
    print(json.dumps(table, indent=1))
    total = {k: sum(row[k] for row in table.values()) for k in ("cases", "clean", "clean, message as expected")}
    print(json.dumps({"total": total}))
