"""A paired confidence interval of a speed-up from interleaved repeats.

The pruned and the dense model are timed repeat by repeat, interleaved (bench.evaluate.latency), so repeat
i of both saw the same machine state. The speed-up of repeat i is r_i = pruned rate / dense rate (or dense
time / pruned time); its log is roughly symmetric, so the interval is Student's t on the mean of log r_i,
exponentiated: a geometric-mean speed-up with a 95 % interval. Fewer than two repeats give no interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bench.stats import LEVEL


@dataclass(frozen=True)
class SpeedupCI:
    estimate: float          # geometric mean of the per-repeat ratios
    low: float | None
    high: float | None
    repeats: int

    def to_dict(self) -> dict:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "repeats": self.repeats}


def speedup_ci(numerator: Sequence[float], denominator: Sequence[float], level: float = LEVEL) -> SpeedupCI:
    """CI of numerator_i / denominator_i (paired by repeat), e.g. pruned tokens/s over dense tokens/s."""
    from scipy.stats import t

    if len(numerator) != len(denominator) or not numerator:
        raise ValueError(f"paired repeats of different lengths: {len(numerator)} vs {len(denominator)}")
    logs = [math.log(a / b) for a, b in zip(numerator, denominator, strict=True)]
    n = len(logs)
    mean = sum(logs) / n
    if n < 2:
        return SpeedupCI(math.exp(mean), None, None, n)
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (n - 1))
    half = float(t.ppf(0.5 + level / 2.0, n - 1)) * sd / math.sqrt(n)
    return SpeedupCI(math.exp(mean), math.exp(mean - half), math.exp(mean + half), n)
