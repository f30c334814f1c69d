"""LLM-Streamline (Chen et al., arXiv 2403.19135): remove the most redundant contiguous block.

Layer selection (paper and official code agree): for a window of n layers, s(l) = mean over tokens of
cos(h_l, h_{l+n}); the block l*..l*+n-1 with the highest s is pruned, one shot.

Replacement `none` removes the n = k budgeted layers outright ("LLM-Streamline (None)" in third-party
tables).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from methods.base import Budget, Pruner
from methods.windows import best_start, block_influence, window_scores


class Streamline(Pruner):
    name = "streamline"
    title = "LLM-Streamline"
    paper = "2403.19135"
    needs_calibration = True

    @dataclass(frozen=True)
    class Params:
        replacement: Literal["none"] = "none"

    def plan(self, model, calib, budget: Budget):
        from bench import arch

        k = budget.to_layers(arch.layer_parameter_counts(model), arch.count_parameters(model))
        stats = self.require_calib(calib).stats
        t0 = time.perf_counter()
        similarity = window_scores(stats.cos_tokens, k)
        start = best_start(similarity, highest=True)
        scores = {"window_cosine": similarity, "window": k, "per_layer": block_influence(stats.cos_tokens)}
        return self.removal_plan(model, budget, list(range(start, start + k)), scores, calib,
                                 {"capture_seconds": stats.seconds, "select_seconds": time.perf_counter() - t0})
