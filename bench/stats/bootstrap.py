"""Stratified paired bootstrap of the Avg (mean over tasks of per-task accuracy) and its contrasts.

Each draw resamples every task's documents with replacement (n_t out of n_t, independently per task:
stratified, so each draw keeps the suite's task mix) and uses the *same* documents for every model
(paired: the disagreements between models are what varies). A draw is a vector of multinomial counts
per task, so a draw costs a matrix product instead of materialised copies. The interval is the
percentile interval of the contrast over the draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.stats import ITERS, LEVEL, SEED
from bench.stats.samples import Aligned


def draws(aligned: Aligned, iters: int = ITERS, seed: int = SEED) -> np.ndarray:
    """Bootstrap replicates of every arm's Avg: shape (iters, n_arms). Tasks are drawn in sorted order
    from one seeded generator, so the result does not depend on dict order."""
    rng = np.random.default_rng(seed)
    total = np.zeros((iters, aligned.n_arms))
    for task in sorted(aligned.tasks):
        x = aligned.tasks[task]
        n = x.shape[0]
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=iters)   # (iters, n)
        total += counts @ x / n
    return total / len(aligned.tasks)


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def scaled(self, k: float) -> Interval:
        lo, hi = sorted((self.low * k, self.high * k))
        return Interval(self.estimate * k, lo, hi)


def contrast_interval(aligned: Aligned, weights: Sequence[float], replicates: np.ndarray | None = None,
                      level: float = LEVEL) -> Interval:
    """Percentile interval of sum_j weights[j] * Avg_j (e.g. [1, -1]: the Avg difference of arm 0 and 1)."""
    w = np.asarray(weights, dtype=np.float64)
    reps = draws(aligned) if replicates is None else replicates
    values = reps @ w
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return Interval(float(aligned.means() @ w), float(low), float(high))


def difference_interval(aligned: Aligned, level: float = LEVEL) -> Interval:
    """The paired Avg difference arm 0 − arm 1 with its stratified bootstrap interval."""
    return contrast_interval(aligned.arms(0, 1), [1.0, -1.0], level=level)
