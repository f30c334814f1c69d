"""`bench report`: golden markdown from a hand-made store, byte-stable figures, no torch, numbers from the store.

The fixture store is tests/fixtures/report_store.py; the golden pages are tests/golden/*.md. After an
intended change of the report's layout, regenerate them with `BENCH_UPDATE_GOLDEN=1 pytest tests/test_report.py`
and read the diff.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures import report_store

from bench.cli import main
from bench.report import LEADERBOARD, PAPER_TABLES, render
from bench.report.groups import Group, collect
from bench.report.leaderboard import efficiency
from bench.report.rows import Row

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("BENCH_UPDATE_GOLDEN") == "1"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report") / "store"
    report_store.build(root)
    return root


@pytest.fixture(scope="module")
def rendered(store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("out") / "reports"
    render(store, out)
    return out


def _edit(store: Path, tmp_path: Path, match, change) -> Path:
    """A copy of `store` where every record for which match(record) is true is changed in place."""
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    hits = 0
    for path in sorted(copy.glob("cells/*/record.json")):
        record = json.loads(path.read_text())
        if match(record):
            change(record)
            path.write_text(json.dumps(record))
            hits += 1
    assert hits, "the edit matched no record"
    return copy


@pytest.mark.parametrize("page", [LEADERBOARD, PAPER_TABLES])
def test_golden_pages(rendered, page):
    text = (rendered / page).read_text(encoding="utf-8")
    golden = GOLDEN / page
    if UPDATE:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8"), f"{page} differs from {golden} (see module docstring)"


def test_same_store_gives_identical_bytes(store, rendered, tmp_path):
    moved = tmp_path / "elsewhere" / "store"  # the store's location must not leak into the pages
    shutil.copytree(store, moved)
    again = tmp_path / "again"
    render(moved, again)
    files = sorted(p.relative_to(rendered) for p in rendered.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert len([f for f in files if f.suffix == ".png"]) == 9
    for f in files:
        assert (rendered / f).read_bytes() == (again / f).read_bytes(), f
    assert b"matplotlib" not in (rendered / files[0]).read_bytes()  # no Software stamp in the PNGs


def test_figures_are_linked_and_exist(rendered):
    text = (rendered / LEADERBOARD).read_text()
    links = re.findall(r"\]\((figures/[^)]+\.png)\)", text)
    assert len(links) == 9
    assert all((rendered / link).is_file() for link in links)


def test_leaderboard_content(rendered):
    text = (rendered / LEADERBOARD).read_text()
    smol = text.split("## smollm2-135m\n")[1]
    rows = [line for line in smol.splitlines() if line.startswith("| ")]
    assert rows[1].startswith("| **dense** |")  # dense first (after the header)
    assert "arc_easy (acc_norm)" in rows[0] and "winogrande (acc)" in rows[0]  # the averaged metric is named
    assert "PPL C4-sample (w=256)" in rows[0]
    assert "67.2 ± 7.5" in rows[1]  # stderr where lm-eval gives one
    assert "| 41.5 |" in next(r for r in rows if r.startswith("| `last` | ratio 0.25"))  # training seconds
    assert "`streamline` keeps the most accuracy per removed parameter" in text.split("## smollm2-135m\n")[0]
    assert "1 older record(s) of the same cells are not shown" in smol
    assert "TrainingError: loss became nan" in text.split("## Failed cells")[1]
    assert "- Limit: ⚠ 10; 40 documents per task (subsets) (⚠ mixed)" in text
    assert "- Date (newest record): 2026-01-10T09:57:00+00:00" in text
    assert len(re.findall(r"^## qwen2.5-0.5b \(", text, re.M)) == 2  # two settings, two groups


def test_numbers_come_from_the_store(store, tmp_path):
    def raise_piqa(record):
        record["accuracy"]["tasks"]["piqa"]["acc_norm"] = 0.7777
        record["accuracy"]["tasks"]["piqa"]["score"] = 0.7777

    copy = _edit(store, tmp_path, lambda r: r["cell"]["method"] == "dense" and r["cell"]["model"] == "smollm2-135m",
                 raise_piqa)
    out = tmp_path / "out"
    render(copy, out, figures=False)
    smol = (out / LEADERBOARD).read_text().split("## smollm2-135m\n")[1]
    assert "| 77.8 ± 7.5 |" in smol.splitlines()[3]


def test_efficiency_is_points_lost_per_ten_percent_removed():
    def rec(method, acc, ratio):
        return {"key": method, "status": "ok", "cell": {"model": "m", "method": method, "budget": {"ratio": ratio}},
                "pruning": {"param_ratio": ratio}, "accuracy": {"average": acc}}

    group = Group("m", {}, Row(rec("dense", 0.60, 0.0)), [Row(rec("a", 0.55, 0.25)), Row(rec("b", 0.59, 0.1))])
    ranked = efficiency(group)
    assert [e.label for e in ranked] == ["b", "a"]
    assert ranked[1].loss_per_10pct == pytest.approx(2.0)  # 5 points over 2.5 tens of percent
    assert ranked[0].loss_per_10pct == pytest.approx(1.0) and ranked[0].retained == pytest.approx(100 * 0.59 / 0.60)


def test_collect_splits_settings_and_keeps_newest():
    coll = collect(report_store.records())
    titles = [g.title for g in coll.groups]
    assert titles[0].startswith("qwen2.5-0.5b (3 tasks") and titles[1].startswith("qwen2.5-0.5b (1 task,")
    smol = next(g for g in coll.groups if g.model == "smollm2-135m")
    assert smol.superseded == 1 and len(coll.failed) == 1
    shortgpt = next(r for r in smol.rows if r.method == "shortgpt")
    assert shortgpt.accuracy > 0.55  # the rerun (newer, better) replaced the older record


def test_cli_report_imports_no_torch(store, tmp_path):
    code = ("import sys; from bench.cli import main; "
            f"rc = main(['report', '--store', {str(store)!r}, '--out', {str(tmp_path / 'r')!r}, '--no-figures']); "
            "assert rc == 0, rc; assert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r" / LEADERBOARD).is_file() and not (tmp_path / "r" / "figures").exists()


def test_empty_store_is_a_user_error(tmp_path, capsys):
    assert main(["report", "--store", str(tmp_path / "none"), "--out", str(tmp_path / "r")]) == 2
    assert "holds no records" in capsys.readouterr().err


def test_committed_reports_regenerate_from_the_committed_store(tmp_path):
    """reports/ in the repository is exactly what `bench report --store reports/store` writes (regenerate it
    after an intended change of the report's layout: `bench report --store reports/store`)."""
    committed = Path(__file__).resolve().parent.parent / "reports"
    out = tmp_path / "reports"
    render(committed / "store", out)
    for page in (LEADERBOARD, PAPER_TABLES):
        assert (out / page).read_text(encoding="utf-8") == (committed / page).read_text(encoding="utf-8"), page
    assert sorted(p.name for p in (out / "figures").iterdir()) == \
        sorted(p.name for p in (committed / "figures").iterdir())
