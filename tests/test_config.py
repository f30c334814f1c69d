"""RunSpec: presets, YAML, CLI overrides (CLI > YAML > preset), unknown keys, validation. No torch."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from bench.cli import options
from bench.core.errors import BudgetError, ConfigError, UnknownNameError
from bench.run import config, presets
from bench.run.config import MethodSpec, from_dict, from_yaml


def _args(**kw):
    """An argparse namespace as `bench run` builds it (unset options are None)."""
    keys = [*(o.dest for o in options.cli_options()), "config", "param"]
    return argparse.Namespace(**{k: None for k in keys} | kw)


def test_default_is_the_quick_preset():
    spec = options.from_cli(_args())
    assert spec.preset == "quick"
    assert [m.name for m in spec.models] == ["smollm2-135m"]
    import methods

    names = [m.name for m in spec.methods]  # the CPU-minute methods, in registry order
    assert names == ["shortgpt", "streamline", "laco", "last", "angular", "random"]
    assert set(names) < set(methods.list_methods())
    assert spec.ratios == (0.125, 0.25) and spec.layers == ()
    assert spec.eval.tasks and spec.eval.limit and spec.eval.perplexity and spec.eval.latency


@pytest.mark.parametrize("name", presets.names())
def test_every_preset_builds_and_round_trips(name):
    spec = config.resolve({"preset": name})
    assert from_dict(spec.to_dict()) == spec


def test_precedence_cli_over_yaml_over_preset(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("methods: [shortgpt, laco]\nlayers: [2]\neval:\n  limit: 7\n  batch_size: 3\n"
                    "  perplexity: {window: 64}\n")
    spec = options.from_cli(_args(config=str(path), limit="11", methods="laco"))
    assert [m.name for m in spec.methods] == ["laco"]  # CLI over YAML
    assert spec.eval.limit == 11 and spec.eval.batch_size == 3  # CLI, YAML
    assert spec.layers == (2,) and spec.ratios == ()  # a YAML budget replaces the preset's
    assert spec.eval.perplexity.window == 64 and spec.eval.perplexity.corpora == ("c4",)  # nested merge
    assert spec.eval.tasks == tuple(presets.get("quick")["eval"]["tasks"])
    spec = options.from_cli(_args(config=str(path), ratios="0.5"))
    assert spec.ratios == (0.5,) and spec.layers == ()


def test_yaml_preset_and_method_forms(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("preset: nightly\nmethods:\n  - shortgpt\n  - {name: laco, params: {threshold: 0.3}}\n")
    spec = from_yaml(path)
    assert spec.preset == "nightly" and spec.eval.batch_size == 16
    assert spec.methods == (MethodSpec("shortgpt"), MethodSpec("laco", (("threshold", 0.3),)))
    path.write_text("methods: {laco: {threshold: 0.2}, last: null}\n")
    assert from_yaml(path).methods == (MethodSpec("laco", (("threshold", 0.2),)), MethodSpec("last"))


def test_none_values_and_lists_from_strings():
    spec = options.from_cli(_args(tasks="none", limit="none", ppl="none", seed="1,2", models="a,b"))
    assert spec.eval.tasks == () and spec.eval.limit is None and spec.eval.perplexity is None
    assert spec.seeds == (1, 2) and [m.name for m in spec.models] == ["a", "b"]


def test_params_go_to_their_method():
    spec = options.from_cli(_args(methods="laco,random", param=["laco.threshold=0.3", "random.seed=4"]))
    assert spec.methods == (MethodSpec("laco", (("threshold", "0.3"),)), MethodSpec("random", (("seed", "4"),)))
    spec = options.from_cli(_args(methods="laco", param=["threshold=0.3"]))
    assert spec.methods == (MethodSpec("laco", (("threshold", "0.3"),)),)
    with pytest.raises(ConfigError, match="not in this run"):
        options.from_cli(_args(methods="laco", param=["shortgpt.x=1"]))
    with pytest.raises(ConfigError, match="which method"):
        options.from_cli(_args(methods="laco,last", param=["threshold=0.3"]))


@pytest.mark.parametrize("text, match", [
    ("modles: [a]\n", "unknown key 'modles'.*did you mean models"),
    ("eval: {limt: 3}\n", "unknown key 'eval.limt'.*did you mean limit"),
    ("eval: {perplexity: {windw: 3}}\n", "unknown key 'eval.perplexity.windw'"),
    ("slurm: {gpus: 2}\n", "unknown key 'slurm.gpus'"),
    ("methods: [{name: laco, param: {}}]\n", "unknown key 'methods\\[laco\\].param'"),
    ("models: [a\n", "not valid YAML at line"),
    ("- a\n- b\n", "must hold a mapping"),
    ("eval: {limit: many}\n", "eval.limit must be a number"),
    ("eval: {batch_size: 2.5}\n", "whole number"),
    ("force: maybe\n", "force must be true or false"),
    ("eval: {limit: 0}\n", "limit 0 must be at least 1"),
    ("executor: cloud\n", "unknown executor"),
    ("seeds: []\n", "no seeds"),
])
def test_bad_yaml_is_one_config_error(tmp_path, text, match):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        from_yaml(path)


@pytest.mark.parametrize("kw, error", [
    ({"ratios": "1.5"}, BudgetError), ({"ratios": "0"}, BudgetError), ({"layers": "0"}, BudgetError),
    ({"preset": "fast"}, UnknownNameError), ({"batch_size": 0}, ConfigError),
])
def test_bad_options(kw, error):
    with pytest.raises(error):
        options.from_cli(_args(**kw))


def test_spec_is_frozen_and_hashable():
    spec = config.resolve({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.store = "x"
    assert hash(spec) == hash(config.resolve({}))


def test_method_params_are_defaults_under_each_methods_own(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("methods: [streamline, {name: laco, params: {threshold: 0.3}}]\n"
                    "method_params: {laco: {threshold: 0.2, n_sentences: 4}, last: {heal: true}}\n"
                    "train: {source: wikipedia}\n")
    spec = from_yaml(path)
    assert spec.train.source == "wikipedia" and spec.train.add_bos is None
    laco = spec.methods[1].with_defaults(spec.method_params)
    assert laco.params_dict() == {"threshold": 0.3, "n_sentences": 4, "layers_per_merge": 2}  # + the preset
    # the quick preset's streamline training size stays under a YAML that adds other defaults
    assert ("train_samples", 32) in dict((m.name, m.params) for m in spec.method_params)["streamline"]
    with pytest.raises(ConfigError, match="eval_share"):  # the splits are fixed (bench.data.splits)
        config.resolve({"train": {"eval_share": 0.5}})


def test_run_flags_are_the_spec_fields_options():
    """Each `bench run` option is stated once, on its spec field: the parser and the CLI layer come from it."""
    from bench.cli import build_parser

    opts = options.cli_options()
    assert {o.flag for o in opts} >= {"--models", "--ratios", "--limit", "--ppl", "--calib-samples", "--mem-gb"}
    for o in opts:  # every option lands on a real field of the spec mapping
        node = dataclasses.asdict(config.resolve({}))
        for part in o.path:
            assert part in node, o
            node = node[part] if part != o.path[-1] else node
    args = build_parser().parse_args(["run", "--limit", "7", "--gpus-per-cell", "2", "--ppl", "none", "--force",
                                      "--layers", "3", "--calib", "c4"])
    spec = options.from_cli(args)
    assert (spec.eval.limit, spec.slurm.gpus_per_cell, spec.eval.perplexity, spec.force) == (7, 2, None, True)
    assert spec.layers == (3,) and spec.ratios == () and spec.calib.source == "c4"
    with pytest.raises(SystemExit):  # the budget options exclude each other
        build_parser().parse_args(["run", "--layers", "3", "--ratios", "0.1"])


def test_standard_preset_seeds_and_documents():
    """standard: 3 seeds per method, 5 for random; 1000 seeded documents per task; both corpora."""
    from bench.run.cells import expand

    spec = config.resolve({"preset": "standard"})
    cells = [c for c in expand(spec) if not c.dense]
    per_method = {m.name: sorted({c.seed for c in cells if c.method == m.name}) for m in spec.methods}
    assert per_method.pop("random") == [0, 1, 2, 3, 4]
    assert all(seeds == [0, 1, 2] for seeds in per_method.values())
    assert spec.eval.limit >= 1000 and spec.eval.subset == "random"
    assert set(spec.eval.perplexity.corpora) == {"wikipedia", "c4"}
    assert len(spec.eval.tasks) == 7


def test_method_seeds_forms_and_errors(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("seeds: [3]\nmethod_seeds: {random: [1, 2]}\nmethods: [shortgpt, random]\n")
    spec = from_yaml(path)
    assert spec.seeds_for("random") == (1, 2) and spec.seeds_for("shortgpt") == (3,)
    assert from_dict(spec.to_dict()) == spec
    path.write_text("method_seeds: {random: []}\n")
    with pytest.raises(ConfigError, match="no seeds"):
        from_yaml(path)
    path.write_text("method_seeds: [1, 2]\n")
    with pytest.raises(ConfigError, match="map method names"):
        from_yaml(path)
