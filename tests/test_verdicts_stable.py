"""No verdict on a committed page depends on Monte Carlo noise: recomputing every p-value and interval that
comes from random draws with ten times the draws (and another seed) changes no verdict, and the accuracy
tests behind the leaderboard are exact (no draws at all)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STORE = REPO / "reports" / "store"


def _verdicts(ev) -> dict:
    """Every decision the pages show, per group: comparisons' significance and direction, and groupings."""
    out = {}
    for slug, g in ev.groups.items():
        for key, c in g.pairs.items():
            out[(slug, "pair", tuple(sorted(key)))] = (c.significant, c.favours())
        for key, c in g.vs_dense.items():
            out[(slug, "dense", key)] = (c.significant, c.favours())
            for task, p in c.tasks_holm.items():
                out[(slug, "task", key, task)] = p < 0.05
        for key, c in g.documents.items():
            out[(slug, "doc", key)] = (c.significant, c.favours())
        for key, letters in g.letters.items():
            out[(slug, "letters", key)] = tuple(sorted(letters.items()))
    return out


def _evidence():
    from bench import report
    from bench.report.evidence import evidence

    coll = report.load(STORE)
    return evidence(coll, report.load_samples(STORE, coll), report.load_fidelity(STORE, coll)), coll


def test_accuracy_tests_on_the_committed_store_are_exact():
    """Every Avg comparison the committed pages make is on a small lattice: its p-value is exact."""
    from bench import report
    from bench.report.evidence import evidence
    from bench.stats import significance

    calls = []
    real = significance.adaptive_sign_flip_p
    significance.adaptive_sign_flip_p = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        coll = report.load(STORE)
        ev = evidence(coll, report.load_samples(STORE, coll), None)
    finally:
        significance.adaptive_sign_flip_p = real
    assert ev.n_comparisons > 0 and not calls


def test_ten_times_the_draws_changes_no_verdict_on_the_leaderboard(monkeypatch):
    from bench.stats import documents, significance

    base, _ = _evidence()
    real = significance.adaptive_sign_flip_p

    def more(w, *, family_size=1, seed=significance.SEED, first=significance.ITERS, confidence=0.999):
        return real(w, family_size=family_size, seed=seed + 1, first=10 * first, confidence=confidence)

    monkeypatch.setattr(significance, "ADAPTIVE_ROUNDS", tuple(10 * r for r in significance.ADAPTIVE_ROUNDS))
    monkeypatch.setattr(significance, "adaptive_sign_flip_p", more)
    monkeypatch.setattr(documents, "adaptive_sign_flip_p", more)
    again, _ = _evidence()
    assert _verdicts(again) == _verdicts(base)


WORDS = re.compile(r"\*\*lower\*\*|\*\*higher\*\*|not distinguishable|\bhigher\b|\blower\b")


@pytest.mark.slow
def test_ten_times_the_bootstrap_changes_no_verdict_on_the_streamline_study_page(tmp_path, monkeypatch):
    from bench.evaluate import bits_per_byte as fidelity
    from scripts.streamline_study import report as R

    out = REPO / "reports" / "streamline-study"
    monkeypatch.setattr(R, "figure", lambda points, path: None)   # the committed figure stays as it is
    R.write_report(out, tmp_path / "page.md")
    base = WORDS.findall((tmp_path / "page.md").read_text())
    real = fidelity.bootstrap_ci

    def more(scores, *, n=2000, seed=0, **kwargs):
        return real(scores, n=10 * n, seed=seed + 1, **kwargs)

    monkeypatch.setattr(fidelity, "bootstrap_ci", more)
    R.write_report(out, tmp_path / "again.md")
    again = WORDS.findall((tmp_path / "again.md").read_text())
    assert len(base) > 50 and again == base
