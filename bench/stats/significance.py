"""Paired tests: exact McNemar per task, a stratified sign-flip test of the Avg difference, Holm.

- McNemar (exact): of the documents the two models answer differently, b are right only under A and c
  only under B; under H0 (no difference) b ~ Binomial(b + c, 1/2). Two-sided p from scipy's binomtest.
- Avg difference: D = mean over tasks of (acc_A,t − acc_B,t) = sum_i w_i d_i with d_i = A_i − B_i and
  w_i = 1 / (K n_t). Under H0 the two answers of a document are exchangeable, i.e. each d_i's sign can be
  flipped: a paired randomization test (scipy's permutation_test, permutation_type="samples"). Only
  discordant documents move the statistic, so only they are passed; with up to 2^13 of them the test
  enumerates every flip (exact), else it draws `ITERS` seeded ones. On one task it equals exact McNemar.
- Holm: step-down adjustment of the p-values of one family (the comparisons one page makes); it holds
  the family-wise error rate without assuming independence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.stats import ITERS, SEED
from bench.stats.samples import Aligned


@dataclass(frozen=True)
class McNemar:
    only_a: int      # documents right under A only
    only_b: int      # right under B only
    n: int           # documents compared
    p: float

    @property
    def discordant(self) -> int:
        return self.only_a + self.only_b


def mcnemar(a: Sequence[float], b: Sequence[float]) -> McNemar:
    """Exact two-sided McNemar test of paired 0/1 outcomes (p = 1 when no pair disagrees)."""
    from scipy.stats import binomtest

    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes of different lengths: {a.shape} vs {b.shape}")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    p = 1.0 if only_a + only_b == 0 else float(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    return McNemar(only_a, only_b, int(a.size), min(p, 1.0))


def sign_flip_p(aligned: Aligned, iters: int = ITERS, seed: int = SEED) -> float:
    """Two-sided p of the paired Avg difference of arm 0 − arm 1 (stratified weights 1/(K n_t))."""
    from scipy.stats import permutation_test

    k = len(aligned.tasks)
    weighted = []
    for task in sorted(aligned.tasks):
        x = aligned.tasks[task]
        d = x[:, 0] - x[:, 1]
        weighted.append(d[d != 0] / (k * x.shape[0]))
    w = np.concatenate(weighted) if weighted else np.zeros(0)
    if w.size == 0:
        return 1.0
    # the pair (w_i, 0) swapped is (0, w_i): the statistic sum(x − y) flips the sign of w_i
    res = permutation_test((w, np.zeros_like(w)), lambda x, y, axis: np.sum(x - y, axis=axis),
                           permutation_type="samples", vectorized=True, n_resamples=iters,
                           alternative="two-sided", rng=np.random.default_rng(seed))
    return float(min(res.pvalue, 1.0))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order: sorted ascending, p_(i) x (m − i + 1), made monotone
    by a running maximum and capped at 1."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: (pvalues[i], i))
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted
