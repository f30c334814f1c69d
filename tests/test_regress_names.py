"""`bench regress` names what differs: each setting of a cell run under other settings, and the method
parameters of a cell that is missing under its baseline parameters but present under others."""

from __future__ import annotations

import dataclasses

from bench.results import regress
from bench.run import config, runner


def _run(tiny_env, tmp_path, name, **over):
    spec = config.from_yaml(tiny_env.config(tmp_path / f"{name}.yaml", methods=["shortgpt", "last"], **over))
    spec = dataclasses.replace(spec, store=str(tmp_path / name))
    assert not runner.run(spec).failures
    return spec.store


def test_regress_names_each_differing_setting_and_parameter(tiny_env, tmp_path):
    base = _run(tiny_env, tmp_path, "base")
    baseline = regress.build_baseline(base)
    assert all(c["context"]["versions"].get("torch") for c in baseline["cells"])
    ppl = {"corpora": [str(tiny_env.corpus)], "window": 32, "max_windows": 1, "batch_size": 2}
    other = _run(tiny_env, tmp_path, "other", eval={"perplexity": ppl},
                 method_params={"last": {"keep_last": True}})
    result = regress.compare(baseline, other)
    changes = {(f.method, f.kind): f.change for f in result.findings}
    assert changes[("shortgpt", "settings")].startswith("evaluated under other settings: ")
    assert changes[("shortgpt", "settings")].endswith('perplexity: [["corpus.txt", 32, 2]] → [["corpus.txt", 32, 1]]')
    assert "the store has it with last.keep_last: False → True" in changes[("last", "missing")]
