"""A paired confidence interval of a speed-up from interleaved repeats, robust to a slow repeat.

The pruned and the dense model are timed repeat by repeat, interleaved (bench.evaluate.timing), so repeat
i of both saw the same machine state. The speed-up of repeat i is r_i = pruned rate / dense rate (or dense
time / pruned time). The estimate is the *median* of the r_i and its interval the distribution-free one of
a median from order statistics: [r_(k), r_(n-k+1)] with the largest k such that P(Binomial(n, 1/2) < k) is
at most (1 - level) / 2, so its coverage is at least `level` whatever the distribution of the r_i. One slow
repeat (a first run that still warms caches, another job on the host) moves neither: the geometric mean
with a t interval it replaces showed 0.89x [0.08, 9.81] for a cell whose other repeats said 1.47x. A 95 %
interval needs at least 6 repeats (with 6: the smallest and the largest ratio, coverage 96.9 %; with 9:
the second smallest and second largest, 96.1 %); fewer give the median alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.stats import LEVEL

ESTIMATOR = "median of paired per-repeat ratios; order-statistic interval"


@dataclass(frozen=True)
class SpeedupCI:
    estimate: float          # median of the per-repeat ratios
    low: float | None
    high: float | None
    repeats: int
    coverage: float | None = None   # the interval's exact coverage (at least the level asked for)

    def to_dict(self) -> dict:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "repeats": self.repeats,
                "coverage": self.coverage, "estimator": ESTIMATOR}


def median_rank(n: int, level: float = LEVEL) -> tuple[int, float] | None:
    """(k, coverage): the 1-based rank k of the lower order statistic of the median's interval from n
    values, and its exact coverage 1 - 2 P(B < k), B ~ Binomial(n, 1/2); None when n is too small."""
    from scipy.stats import binom

    best = None
    for k in range(1, n // 2 + 1):
        tail = float(binom.cdf(k - 1, n, 0.5))
        if tail <= (1.0 - level) / 2.0:
            best = (k, 1.0 - 2.0 * tail)
    return best


def speedup_ci(numerator: Sequence[float], denominator: Sequence[float], level: float = LEVEL) -> SpeedupCI:
    """CI of numerator_i / denominator_i (paired by repeat), e.g. pruned tokens/s over dense tokens/s."""
    import statistics

    if len(numerator) != len(denominator) or not numerator:
        raise ValueError(f"paired repeats of different lengths: {len(numerator)} vs {len(denominator)}")
    ratios = sorted(a / b for a, b in zip(numerator, denominator, strict=True))
    n = len(ratios)
    estimate = float(statistics.median(ratios))
    rank = median_rank(n, level)
    if rank is None:
        return SpeedupCI(estimate, None, None, n)
    k, coverage = rank
    return SpeedupCI(estimate, ratios[k - 1], ratios[n - k], n, coverage)
