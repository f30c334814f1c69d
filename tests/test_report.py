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
from bench.report.groups import collect

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
    smol = text.split("## smollm2-135m\n")[1].split("All measures of", 1)[1]  # the full table
    rows = [line for line in smol.splitlines() if line.startswith("| ")]
    assert rows[1].startswith("| **dense** |")  # dense first (after the header)
    assert "arc_easy (acc_norm)" in rows[0] and "winogrande (acc)" in rows[0]  # the averaged metric is named
    assert "PPL c4 (tokens, w=256)" in rows[0]  # the corpus by the name --ppl takes
    assert "67.2 ± 7.5" in rows[1]  # stderr where lm-eval gives one
    assert "| 41.5 |" in next(r for r in rows if r.startswith("| `last` | ratio 0.25"))  # training seconds
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
    smol = (out / LEADERBOARD).read_text().split("## smollm2-135m\n")[1].split("All measures of", 1)[1]
    assert "| 77.8 ± 7.5 |" in next(line for line in smol.splitlines() if line.startswith("| **dense**"))


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


def _smol(record, method, ratio):
    c = record["cell"]
    return c["model"] == "smollm2-135m" and c["method"] == method and (c["budget"] or {}).get("ratio") == ratio


def test_claims_follow_the_paired_tests(rendered):
    """The fixture's methods differ by a few points on 40 documents: no page names a best."""
    board, paper = (rendered / LEADERBOARD).read_text(), (rendered / PAPER_TABLES).read_text()
    assert "keeps the most" not in board and "beats every other method" not in board
    assert "no method beats every other significantly; the tests cannot tell apart" in board
    assert "Best:" not in paper and "**" not in paper.split("## smollm2-135m, ratio 0.25")[1].split("##")[0]
    assert "families (one per model and budget), each Holm-adjusted" in board and "unadjusted" in board


def test_a_significant_best_is_named_and_bold(store, tmp_path):
    """Plant a method that answers every document right: the pages name it and bold it."""
    def perfect(record):
        for t in record["accuracy"]["tasks"].values():
            t["score"] = t[t["metric"]] = 1.0
        record["accuracy"]["average"] = 1.0

    copy = _edit(store, tmp_path, lambda r: _smol(r, "streamline", 0.25), perfect)
    key = next(json.loads(p.read_text())["key"] for p in copy.glob("cells/*/record.json")
               if _smol(json.loads(p.read_text()), "streamline", 0.25))
    rows = [json.loads(line) for line in (copy / "cells" / key / "samples.jsonl").read_text().splitlines()]
    (copy / "cells" / key / "samples.jsonl").write_text(
        "".join(json.dumps({**r, "acc": 1.0, "acc_norm": 1.0}) + "\n" for r in rows))
    out = tmp_path / "out"
    render(copy, out, figures=False)
    board, paper = (out / LEADERBOARD).read_text(), (out / PAPER_TABLES).read_text()
    assert "**smollm2-135m, ratio 0.25**: `streamline` seed 0 beats every other method on Avg" in board
    table = paper.split("## smollm2-135m, ratio 0.25")[1].split("\n## ")[0]
    assert "Best: streamline" in table
    streamline = next(line for line in table.splitlines() if line.startswith("| streamline"))
    assert streamline.count("**") == 2 * 5   # three tasks, Avg and RP
    assert "significantly above dense: `streamline` seed 0" in board


def test_chance_is_marked_and_large_perplexities_are_readable(store, tmp_path):
    from bench.report import markdown as md

    assert md.ppl(109857528368) == "1.10e11" and md.ppl(39.234) == "39.23"

    def at_chance(record):
        t = record["accuracy"]["tasks"]["piqa"]
        t["score"] = t["acc_norm"] = 0.5
        record["perplexity"][0]["perplexity"] = 1.2e9

    copy = _edit(store, tmp_path, lambda r: _smol(r, "angular", 0.25), at_chance)
    out = tmp_path / "out"
    render(copy, out, figures=False)
    smol = (out / LEADERBOARD).read_text().split("## smollm2-135m\n")[1]
    row = next(line for line in smol.splitlines() if line.startswith("| `angular` | ratio 0.25"))
    assert "50.0 ± " in row and "†" in row and "1.20e9" in row
    assert "Chance: arc_easy 25.0 %, piqa 50.0 %, winogrande 50.0 %" in smol


def test_speedups_carry_their_paired_interval(rendered):
    """The paired median speed-up; its order-statistic interval needs 6 repeats, so the fixture's 3-repeat
    cells show the median alone (bench.stats.speedup)."""
    smol = (rendered / LEADERBOARD).read_text().split("## smollm2-135m\n")[1].split("All measures of", 1)[1]
    header, _, dense, *rows = [line for line in smol.splitlines() if line.startswith("| ")][:12]
    assert "Decode × [95 % CI]" in header
    col = [c.strip() for c in header.split("|")].index("Decode × [95 % CI]")
    for row in rows:
        assert re.fullmatch(r"\d\.\d\d×( \[\d\.\d\d, \d\.\d\d\])?", [c.strip() for c in row.split("|")][col]), row


def test_sublayer_cells_get_a_units_column_and_a_figure(store, tmp_path):
    """A cell whose plan drops attention / MLP sublayers alone: the group's table counts its units and a
    figure marks which sublayers each cell dropped; groups without such cells are unchanged (golden)."""

    def to_sublayers(record):
        n = record["pruning"]["n_layers"]
        record["pruning"]["ops"] = [{"op": "drop_sublayers", "attn": [n - 3, n - 2, 5], "mlp": [n - 2, 7]}]
        record["pruning"]["removed_layers"] = [n - 2]
        record["pruning"]["layers_removed"] = 1

    edited = _edit(store, tmp_path, lambda r: r["cell"]["model"] == "smollm2-135m" and r["cell"]["method"] == "shortgpt"
                   and (r["cell"]["budget"] or {}).get("ratio") == 0.25, to_sublayers)
    out = tmp_path / "reports"
    written = render(edited, out)
    page = (out / LEADERBOARD).read_text()
    assert page.count("Units removed (attn / MLP / blocks)") >= 2  # the smollm2 table's header and its note
    assert "| 2 / 1 / 1 |" in page.replace("  ", " ")
    figures = [p for p in written if p.name.endswith("-sublayers.png")]
    assert len(figures) == 1 and "smollm2" in figures[0].name
    assert "sublayers each cell dropped" in page


def test_coverage_lists_the_planned_cells_the_store_lacks():
    from bench.report.coverage import coverage_lines, plan_of

    cells = [{"key": "d", "model": "m", "method": "dense"}]
    cells += [{"key": f"{meth}{r}{s}", "model": "m", "method": meth, "ratio": r, "seed": s}
              for meth in ("sleb", "shortgpt") for r in (0.125, 0.25) for s in (0, 1, 2)]
    plan = plan_of("standard", cells)
    lines = coverage_lines(plan, {"d", "shortgpt0.1250", "shortgpt0.1251", "shortgpt0.1252", "shortgpt0.250",
                                  "sleb0.1250"})
    assert lines[0].startswith("- Planned run `standard`: 6 of 13 cells are in this store; 7 missing")
    assert lines[1] == "  - m: `sleb` ratio 0.125 seeds 1, 2 · ratio 0.25 seeds 0, 1, 2; `shortgpt` ratio 0.25 seeds 1, 2"
    assert coverage_lines(plan, {c["key"] for c in cells}) == [
        "- Planned run `standard`: 13 of 13 cells are in this store; none is missing."]


def test_report_plan_option_lists_the_presets_missing_cells(store, tmp_path, capsys):
    """`bench report --plan quick`: the quick preset's 13 cells are not in the fixture store (other settings),
    and both pages say so under the provenance; an unknown preset is one line and exit 2."""
    out = tmp_path / "out"
    assert main(["report", "--store", str(store), "--out", str(out), "--no-figures", "--plan", "quick"]) == 0
    for page in (LEADERBOARD, PAPER_TABLES):
        text = (out / page).read_text(encoding="utf-8")
        assert "- Planned run `quick`: 0 of 13 cells are in this store; 13 missing" in text
        assert "  - smollm2-135m: the dense cell; `shortgpt` ratio 0.125 seed 0 · ratio 0.25 seed 0;" in text
    capsys.readouterr()
    assert main(["report", "--store", str(store), "--out", str(tmp_path / "o2"), "--plan", "standrd"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "standard" in err[0]
    assert not (tmp_path / "o2").exists()
