"""The Streamline study's points as the page reads them: the stored records, bits per byte with its bootstrap
intervals (paired over the same documents for differences), the trained points in the page's order, and the
exact McNemar tests behind every accuracy comparison (Holm-adjusted over the page's family)."""

from __future__ import annotations

import json
from pathlib import Path

from scripts.streamline_study import design

LABELS = {"mse": "mse (official)", "mse_skip1": "mse without position 0", "lm": "lm (next token)",
          "kd": "kd (dense logits)"}


def load(out: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    read = lambda sub: {p.stem: json.loads(p.read_text()) for p in sorted((out / sub).glob("*.json"))}  # noqa: E731
    return read("points"), read("accuracy")


def _scores(rec: dict):
    from bench.evaluate.bits_per_byte import DocumentScore

    return [DocumentScore(**d) for d in rec["fidelity"]["per_document"]]


def bpb_ci(rec: dict, base: dict | None = None) -> tuple[float, float]:
    from bench.evaluate.bits_per_byte import bootstrap_ci

    return bootstrap_ci(_scores(rec), n=2000, seed=0, baseline=_scores(base) if base is not None else None)


def bpb(rec: dict) -> float:
    return rec["fidelity"]["bits_per_byte"]


def fmt_ci(lo: float, hi: float, digits: int = 3) -> str:
    return f"[{lo:+.{digits}f}, {hi:+.{digits}f}]"


def trained(points: dict[str, dict]) -> list[dict]:
    rows = [r for r in points.values() if r["point"]["kind"] == "train"]
    return sorted(rows, key=lambda r: (r["point"]["replacement"] != "layer", r["point"]["replacement"],
                                       list(LABELS).index(r["point"]["objective"]), r["point"]["seed"],
                                       r["point"]["tokens"]))


def accuracy_tests(acc: dict[str, dict]) -> dict[tuple[str, str, str], tuple]:
    """Every accuracy comparison the page makes (each point against `none` and against `shortgpt`, per task):
    (a, b, task) -> (exact McNemar, its Holm-adjusted p over the whole family)."""
    from bench.stats.significance import holm, mcnemar

    tests = {}
    for n in sorted(acc):
        for against in ("none", "shortgpt"):
            if n != against and against in acc:
                for t in design.ACC_TASKS:
                    tests[(n, against, t)] = mcnemar(acc[n]["per_document"][t], acc[against]["per_document"][t])
    adjusted = holm([m.p for m in tests.values()])
    return {k: (m, p) for (k, m), p in zip(tests.items(), adjusted, strict=True)}
