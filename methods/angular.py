"""Angular distance (Gromov et al., arXiv 2403.17887): remove the contiguous block of n layers whose
input and output, at the last token, are closest in angle.

d(l, n) = (1/pi) arccos(cos(h_l[T], h_{l+n}[T])) averaged over calibration sequences (T = last
non-padding token); l* = argmin_l d(l, n); layers l*..l*+n-1 are removed. Cosines are accumulated in fp32
and clamped before arccos. The mean of cosines is taken before arccos (the paper's code averages the
distance per sample; with fixed-length windows both rank blocks alike in practice).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from methods import register
from methods.base import Budget, Pruner
from methods.windows import angular, best_start, window_scores


@register
class Angular(Pruner):
    name = "angular"
    title = "Angular distance (Gromov et al.)"
    paper = "2403.17887"
    needs_calibration = True
    order = 50

    @dataclass(frozen=True)
    class Params:
        pass

    def plan(self, model, calib, budget: Budget):
        from bench import arch

        n = budget.to_layers(arch.layer_parameter_counts(model), arch.count_parameters(model))
        stats = self.require_calib(calib).stats
        t0 = time.perf_counter()
        distance = [angular(c) for c in window_scores(stats.cos_last, n)]
        start = best_start(distance, highest=False)
        per_layer = [angular(c) for c in window_scores(stats.cos_last, 1)]
        return self.removal_plan(model, budget, list(range(start, start + n)),
                                 {"angular_distance": distance, "window": n, "per_layer": per_layer}, calib,
                                 {"capture_seconds": stats.seconds, "select_seconds": time.perf_counter() - t0})
