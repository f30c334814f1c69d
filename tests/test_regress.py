"""`bench regress`: a store passes against its own baseline and fails once a metric gets worse."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fixtures import report_store

from bench.cli import main
from bench.regress import Tolerances, build_baseline, check_metric, compare, load_baseline

ENTRY = {"model": "m", "method": "shortgpt", "budget": {"layers": None, "ratio": 0.25}}
SHORTGPT_25 = ("smollm2-135m", "shortgpt", 0.25)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("regress") / "store"
    report_store.build(root)
    return root


@pytest.fixture(scope="module")
def baseline(store, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("baseline") / "baseline.json"
    assert main(["regress", "--update-baseline", "--baseline", str(path), "--store", str(store)]) == 0
    return path


def _copy_with(store: Path, tmp_path: Path, which: tuple[str, str, float], change) -> Path:
    """A copy of the store in which the record of (model, method, ratio) is changed by `change`."""
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    hits = 0
    for path in sorted(copy.glob("cells/*/record.json")):
        r = json.loads(path.read_text())
        c = r["cell"]
        if (c["model"], c["method"], (c["budget"] or {}).get("ratio")) == which and c["seed"] == 0:
            change(r)
            path.write_text(json.dumps(r))
            hits += 1
    assert hits == 1
    return copy


def _lower_piqa(record, by=0.30):
    task = record["accuracy"]["tasks"]["piqa"]
    task["acc_norm"] = task["score"] = task["score"] - by
    scores = [t["score"] for t in record["accuracy"]["tasks"].values()]
    record["accuracy"]["average"] = sum(scores) / len(scores)


def test_own_baseline_passes(store, baseline, capsys):
    assert main(["regress", "--baseline", str(baseline), "--store", str(store)]) == 0
    assert "no regressions" in capsys.readouterr().out


def test_lowered_accuracy_fails(store, baseline, tmp_path, capsys):
    copy = _copy_with(store, tmp_path, SHORTGPT_25, _lower_piqa)
    assert main(["regress", "--baseline", str(baseline), "--store", str(copy)]) == 1
    out = capsys.readouterr().out
    assert "accuracy/piqa" in out and "-30.0 points" in out and "shortgpt" in out
    findings = compare(load_baseline(baseline), copy).findings
    assert {f.metric for f in findings} == {"accuracy/piqa", "accuracy/avg"}


def test_perplexity_and_latency_tolerances_are_options(store, baseline, tmp_path):
    def worse(record):
        record["perplexity"][0]["perplexity"] *= 1.05
        record["latency"]["decode_tokens_per_s"] /= 1.10

    copy = _copy_with(store, tmp_path, SHORTGPT_25, worse)
    args = ["regress", "--baseline", str(baseline), "--store", str(copy)]
    assert main(args) == 1
    assert main([*args, "--ppl-pct", "10"]) == 0
    assert main([*args, "--ppl-pct", "10", "--latency-pct", "5"]) == 1
    assert main([*args, "--skip", "perplexity"]) == 0


def test_failed_missing_and_changed_cells(store, baseline, tmp_path):
    def fail(record):
        record.update(status="failed", error={"type": "RuntimeError", "message": "CUDA out of memory"})

    copy = _copy_with(store, tmp_path, SHORTGPT_25, fail)
    kinds = {f.kind for f in compare(load_baseline(baseline), copy).findings}
    assert kinds == {"failed"}
    shutil.rmtree(next(p.parent for p in copy.glob("cells/*/record.json")
                       if json.loads(p.read_text())["status"] == "failed"))
    findings = compare(load_baseline(baseline), copy).findings
    assert [f.kind for f in findings] == ["missing"]
    assert compare(load_baseline(baseline), copy, allow_missing=True).findings == []

    def relimit(record):
        record["accuracy"]["limit"] = 100

    other = _copy_with(store, tmp_path / "x", SHORTGPT_25, relimit)
    assert [f.kind for f in compare(load_baseline(baseline), other).findings] == ["settings"]


@pytest.mark.parametrize(("metric", "base", "cur", "flagged"), [
    ("accuracy/piqa", (0.600, 0.005), 0.585, True),    # 1.5 points > 1 and > 2 x 0.5
    ("accuracy/piqa", (0.600, 0.010), 0.585, False),   # 1.5 points but not > 2 x 1.0
    ("accuracy/piqa", (0.600, 0.001), 0.592, False),   # beyond 2 stderr but not more than 1 point
    ("accuracy/piqa", (0.600, None), 0.585, True),     # no stderr: the points rule alone
    ("accuracy/avg", (0.600, 0.005), 0.700, False),    # better is never a regression
    ("perplexity/C4-sample", (20.0, None), 20.5, False),
    ("perplexity/C4-sample", (20.0, None), 20.7, True),
    ("latency/prefill_ms", (10.0, None), 11.4, False),
    ("latency/prefill_ms", (10.0, None), 11.6, True),
    ("latency/decode_tokens_per_s", (100.0, None), 90.0, False),  # 11 % more time per token
    ("latency/decode_tokens_per_s", (100.0, None), 85.0, True),   # 17.6 % more time per token
])
def test_tolerances(metric, base, cur, flagged):
    finding = check_metric(ENTRY, metric, {"value": base[0], "stderr": base[1]}, {"value": cur, "stderr": None},
                           Tolerances())
    assert (finding is not None) == flagged


def test_baseline_is_deterministic(store, baseline, tmp_path):
    again = tmp_path / "b.json"
    assert main(["regress", "--update-baseline", "--baseline", str(again), "--store", str(store)]) == 0
    assert again.read_bytes() == baseline.read_bytes()
    data = build_baseline(store)
    assert data["date"] == "2026-01-10T09:57:00+00:00" and len(data["cells"]) == 15  # the failed cell has none
    cell = next(c for c in data["cells"] if (c["model"], c["method"]) == SHORTGPT_25[:2]
                and c["budget"]["ratio"] == 0.25)
    assert set(cell["metrics"]) == {"accuracy/avg", "accuracy/arc_easy", "accuracy/piqa", "accuracy/winogrande",
                                    "perplexity/C4-sample", "perplexity/Wikipedia-sample",
                                    "latency/prefill_ms", "latency/decode_tokens_per_s"}


def test_missing_baseline_is_a_user_error(store, tmp_path, capsys):
    assert main(["regress", "--baseline", str(tmp_path / "none.json"), "--store", str(store)]) == 2
    assert "--update-baseline" in capsys.readouterr().err
