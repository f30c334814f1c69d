"""One spelling per name: models, methods, tasks and corpora are canonicalised before any cell key is built,
"did you mean" ignores case, options are never taken by prefix, and run and prune accept each other's
spelling of a concept."""

from __future__ import annotations

import pytest

from bench.cli import build_parser, main
from bench.cli.options import from_cli
from bench.run import cells


def _spec(*argv):
    return from_cli(build_parser().parse_args(["run", *argv]))


def test_a_model_typed_in_another_case_names_the_stored_cells():
    """`--models SmolLM2-135M` gives the keys of `smollm2-135m`: `bench run` skips exactly the cells whose key
    is in the store, so it reuses them (one section and one figure set on the pages)."""
    typed = _spec("--models", "SmolLM2-135M", "--methods", "ShortGPT,Last", "--tasks", "PIQA,ARC_Easy",
                  "--ppl", "C4-sample")
    stored = _spec("--models", "smollm2-135m", "--methods", "shortgpt,last", "--tasks", "piqa,arc_easy",
                   "--ppl", "c4")
    assert typed == stored
    assert [c.key for c in cells.expand(typed)] == [c.key for c in cells.expand(stored)]
    assert {c.model for c in cells.expand(typed)} == {"smollm2-135m"}


def test_run_and_prune_take_each_others_spelling_and_no_prefix():
    args = build_parser().parse_args(["run", "--ratio", "0.25", "--method", "shortgpt", "--model", "smollm2-135m"])
    assert args.ratios == "0.25" and args.methods == "shortgpt" and args.models == "smollm2-135m"
    args = build_parser().parse_args(["prune", "--ratios", "0.25", "--methods", "last", "--out", "x"])
    assert args.ratio == 0.25 and args.method == "last"


@pytest.mark.parametrize("argv, needle", [
    (["run", "--rat", "0.25"], "unrecognized arguments: --rat"),           # no prefix matching
    (["run", "--tasks", "PIQX", "--store", "{tmp}/s"], "did you mean piqa"),  # case-insensitive suggestion
    (["run", "--methods", "SHORTGTP", "--store", "{tmp}/s"], "did you mean shortgpt"),
    (["prune", "--method", "shortgpt", "--layers", "1", "--param", "laco.threshold=0.3", "--out", "{tmp}/o"],
     "is for method 'laco', not 'shortgpt'"),
])
def test_name_errors_are_one_line_with_a_suggestion(argv, needle, tmp_path, capsys):
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and not (tmp_path / "s").exists()
