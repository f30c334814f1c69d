"""`bench compare STORE_A STORE_B`: the cells both stores hold, with the paired Avg difference on the
documents both scored, bits per byte and speed-up under each, and what settings differ."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench.cli import main

STORE = Path(__file__).resolve().parent.parent / "reports" / "store"


def _copy(tmp_path) -> Path:
    copy = tmp_path / "b"
    shutil.copytree(STORE, copy)
    return copy


def test_compare_pairs_matching_cells_with_paired_differences(tmp_path, capsys):
    b = _copy(tmp_path)
    records = {json.loads(p.read_text())["cell"]["label"]: p.parent for p in b.glob("cells/*/record.json")}
    shutil.rmtree(records["gemma3-270m · random · ratio 0.25 · seed 0"])  # only in A
    folder = records["smollm2-135m · shortgpt · ratio 0.25 · seed 0"]
    rows = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    flipped = 0
    for row in rows:  # B answers every PIQA document right
        if row["task"] == "piqa" and row["acc_norm"] == 0.0:
            row["acc"] = row["acc_norm"] = 1.0
            flipped += 1
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["compare", str(STORE), str(b), "--json"]) == 0
    table = {r["Cell"]: r for r in json.loads(capsys.readouterr().out)}
    assert len(table) == 38 and "gemma3-270m · random · ratio 0.25" not in table
    same = table["smollm2-135m · laco · ratio 0.25"]
    assert same["A − B, points [95 % CI]"] == "+0.0 [+0.0, +0.0]" and same["Settings that differ"] == "none"
    changed = table["smollm2-135m · shortgpt · ratio 0.25"]
    n = sum(1 for r in rows if r["task"] == "piqa")
    assert changed["A − B, points [95 % CI]"].startswith(f"−{100 * flipped / n / 3:.1f}")  # Avg over 3 tasks
    assert changed["Decode × A"] == changed["Decode × B"] == "1.52×"   # the paired median of 3 repeats


def test_compare_text_and_no_common_cell(tmp_path, capsys):
    assert main(["compare", str(STORE), str(STORE)]) == 0
    out = capsys.readouterr().out
    assert "39 cells in both stores" in out and "only in A: 0 cell(s)" in out
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(STORE), str(tmp_path / "empty")]) == 2
    assert "no cell is in both" in capsys.readouterr().err
