"""Running less: `--skip` / `--only` switch evaluations off without a YAML file, and `--limit N` on the
command line bounds the whole cell (documents per task, perplexity windows, fidelity documents)."""

from __future__ import annotations

import json

import pytest

from bench.cli import build_parser, main
from bench.cli.options import from_cli


def _spec(*argv):
    return from_cli(build_parser().parse_args(["run", *argv]))


def test_skip_and_only():
    spec = _spec("--skip", "latency,fidelity")
    assert spec.eval.latency is None and spec.eval.fidelity is None
    assert spec.eval.perplexity is not None and spec.eval.tasks and spec.eval.stability
    spec = _spec("--only", "accuracy")
    assert spec.eval.tasks and (spec.eval.perplexity, spec.eval.fidelity, spec.eval.latency) == (None, None, None)
    assert spec.eval.stability is False
    spec = _spec("--only", "accuracy,stability")
    assert spec.eval.stability is True and spec.eval.latency is None


def test_limit_bounds_the_whole_cell():
    quick = _spec()
    assert (quick.eval.limit, quick.eval.perplexity.max_windows, quick.eval.fidelity.max_documents) == (50, 4, 16)
    spec = _spec("--limit", "3")
    assert (spec.eval.limit, spec.eval.perplexity.max_windows, spec.eval.fidelity.max_documents) == (3, 3, 3)
    spec = _spec("--limit", "100")  # never more than the preset asks for
    assert (spec.eval.limit, spec.eval.perplexity.max_windows, spec.eval.fidelity.max_documents) == (100, 4, 16)


@pytest.mark.parametrize("argv, needle", [
    (["--skip", "latncy"], "did you mean latency"),
    (["--skip", "latency", "--only", "accuracy"], "not allowed with argument"),
])
def test_bad_kinds_are_one_line(argv, needle, tmp_path, capsys):
    assert main(["run", *argv, "--store", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_a_skipped_evaluation_leaves_no_part(tiny_env, tmp_path):
    cfg = tiny_env.config(tmp_path / "run.yaml", methods=["last"])
    store = tmp_path / "store"
    assert main(["run", "--config", str(cfg), "--store", str(store), "--skip", "perplexity", "--plain",
                 "--no-report"]) == 0
    records = [json.loads(p.read_text()) for p in store.glob("cells/*/record.json")]
    assert len(records) == 2 and all("perplexity" not in r for r in records)
