"""Paired tests: exact McNemar per task, a stratified sign-flip test of the Avg difference, Holm.

- McNemar (exact): of the documents the two models answer differently, b are right only under A and c
  only under B; under H0 (no difference) b ~ Binomial(b + c, 1/2). Two-sided p from scipy's binomtest.
- Avg difference: D = mean over tasks of (acc_A,t − acc_B,t) = sum_i w_i d_i with d_i = A_i − B_i and
  w_i = 1 / (K n_t). Under H0 the two answers of a document are exchangeable, i.e. each d_i's sign can be
  flipped: a paired randomization test (what scipy's permutation_test does with permutation_type="samples",
  vectorised). Only discordant documents move the statistic; with up to 13 of them the test enumerates
  every flip (exact), else it draws `ITERS` seeded ones. On one task the exact test equals exact McNemar.
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


EXACT_UP_TO = 13   # discordant documents up to which every sign pattern is enumerated (2^13 = 8192)


def sign_flip_p(aligned: Aligned, iters: int = ITERS, seed: int = SEED) -> float:
    """Two-sided p of the paired Avg difference of arm 0 − arm 1 (stratified weights 1/(K n_t)).

    The same test as scipy's `permutation_test(..., permutation_type="samples")` on the pairs (w_i, 0),
    vectorised here because a report runs a hundred of them: exact over all 2^m sign patterns of the m
    discordant documents when m <= EXACT_UP_TO, else `iters` seeded random patterns with the usual +1
    correction ((hits + 1) / (iters + 1)). Values within a relative 1e-9 of the observed count as extreme.
    """
    k = len(aligned.tasks)
    weighted = []
    for task in sorted(aligned.tasks):
        x = aligned.tasks[task]
        d = x[:, 0] - x[:, 1]
        weighted.append(d[d != 0] / (k * x.shape[0]))
    w = np.concatenate(weighted) if weighted else np.zeros(0)
    m = w.size
    if m == 0:
        return 1.0
    observed = abs(float(w.sum()))
    tol = 1e-9 * max(observed, float(np.abs(w).sum()))
    if m <= EXACT_UP_TO:
        patterns = (np.arange(2 ** m)[:, None] >> np.arange(m)) & 1
        null = np.abs((1 - 2 * patterns) @ np.abs(w))
        return float(min(1.0, np.mean(null >= observed - tol)))
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(iters, m))
    null = np.abs(signs @ w)
    return float(min(1.0, (np.sum(null >= observed - tol) + 1) / (iters + 1)))


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
