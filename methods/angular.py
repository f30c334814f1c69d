"""Angular distance (Gromov et al., arXiv 2403.17887): remove the contiguous block of n layers whose
input and output, at the last token, are closest in angle.

d(l, n) = (1/pi) arccos(cos(h_l[T], h_{l+n}[T])) averaged over calibration sequences (T = last
non-padding token); l* = argmin_l d(l, n); layers l*..l*+n-1 are removed. Cosines are computed in fp32
and clamped to [-1, 1] before arccos.

`averaging="per_sample"` (default, as PruneMe's `layer_similarity.py`): the angular distance of each
sequence, averaged. `averaging="mean_cosine"` (this harness's earlier rule, kept for comparison): the
arccos of the mean cosine, a different statistic (arccos is not linear) that can rank blocks differently
when the per-sample cosines spread.

`min_start` (default 0: every block, as the paper and sramshetty/ShortGPT's angular mode): the lowest
layer a block may start at. PruneMe (arcee-ai/PruneMe `layer_similarity.py`) drops the embedding output
from the hidden states, so its blocks start at layer 1 or later: `min_start=1` is its behaviour
(tests/test_official_parity.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bench.core.errors import BudgetError
from methods import register
from methods.base import Budget, Pruner, Search
from methods.selection import angular, best_start, window_scores


@register
class Angular(Pruner):
    name = "angular"
    title = "Angular distance (Gromov et al.)"
    paper = "2403.17887"
    needs_calibration = True
    order = 50

    @dataclass(frozen=True)
    class Params:
        averaging: Literal["per_sample", "mean_cosine"] = "per_sample"
        min_start: int = 0  # lowest block start (PruneMe: 1, no block starts at the embedding output)

        def __post_init__(self):
            if self.averaging not in ("per_sample", "mean_cosine"):
                raise ValueError("averaging must be per_sample or mean_cosine")
            if self.min_start < 0:
                raise ValueError("min_start must be >= 0")

    def plan(self, model, calib, budget: Budget):
        n = budget.layers_for(model)
        stats = self.require_calib(calib).stats
        with Search(seconds="select_seconds") as select:
            if self.params.averaging == "per_sample":
                distance = window_scores(stats.angle_last, n)
                per_layer = window_scores(stats.angle_last, 1)
            else:
                distance = [angular(c) for c in window_scores(stats.cos_last, n)]
                per_layer = [angular(c) for c in window_scores(stats.cos_last, 1)]
            if self.params.min_start > len(distance) - 1:
                raise BudgetError(f"no block of {n} layers starts at layer {self.params.min_start} or later",
                                  "lower the budget or min_start")
            start = self.params.min_start + best_start(distance[self.params.min_start:], highest=False)
        return self.removal_plan(model, budget, list(range(start, start + n)),
                                 {"angular_distance": distance, "window": n, "per_layer": per_layer}, calib,
                                 select.cost(capture_seconds=stats.seconds))
