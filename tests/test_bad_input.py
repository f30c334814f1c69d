"""The bad-input table (tests/bad_input_table.py): every case exits 2 with exactly one stderr line
`error: ... (hint: ...)`, no traceback, no model loaded (the loader is replaced by one that fails the
case) and nothing written (every file and folder under the sandbox and the model's folder compared,
with contents, before and after)."""

from __future__ import annotations

import pytest
import test_runner_fixtures as fx
from bad_input_table import CASES, fill, measure, one_line_with_hint, sandbox

tiny_env = fx.tiny_env  # a shared fixture


@pytest.fixture
def places(tiny_env, tmp_path, monkeypatch):
    from bench.core.paths import cache_root

    monkeypatch.setenv("BENCH_CACHE_DIR", str(cache_root()))  # the real cache, whatever HOME says below
    work = tmp_path / "work"
    work.mkdir()
    found = sandbox(work, tiny_env.model, tiny_env.corpus, tiny_env.config)
    monkeypatch.setenv("HOME", found["home"])
    monkeypatch.chdir(work)
    return found


def test_the_table_is_big_enough():
    from bad_input_table import EXPORT_MARKER

    from bench.models.export_target import MARKER

    assert len(CASES) >= 200 and len({c[0] for c in CASES}) == len(CASES)
    assert EXPORT_MARKER == MARKER


@pytest.mark.parametrize("case, argv, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tiny_env, tmp_path, places, case, argv, fragment):
    if case == "run-cuda-absent":
        import torch

        if torch.cuda.is_available():
            pytest.skip("CUDA is available here")
    result = measure(fill(argv, places), (tmp_path, tiny_env.model))
    assert not result["traceback"], "\n".join(result["lines"])
    assert not result["loaded"], "a model was loaded before the input was checked"
    assert result["rc"] == 2, result
    assert one_line_with_hint(result["lines"]), result["lines"]
    assert fragment in result["lines"][0], result["lines"]
    assert result["changed"] == [], result["changed"]
