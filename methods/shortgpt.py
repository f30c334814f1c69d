"""ShortGPT (Men et al., arXiv 2403.03853): remove the k layers of lowest Block Influence.

BI_i = 1 - E_{x,t} cos(h_i[t], h_{i+1}[t]), averaged over every non-padding calibration token (the
official code sums instead, which ranks identically). The k layers need not be contiguous. One shot.
"""

from __future__ import annotations

from dataclasses import dataclass

from methods import register
from methods.base import Budget, Pruner, Search
from methods.selection import block_influence, lowest_k


@register
class ShortGPT(Pruner):
    name = "shortgpt"
    title = "ShortGPT (Block Influence)"
    paper = "2403.03853"
    needs_calibration = True
    order = 10

    @dataclass(frozen=True)
    class Params:
        pass

    def plan(self, model, calib, budget: Budget):
        k = budget.layers_for(model)
        stats = self.require_calib(calib).stats
        with Search(seconds="select_seconds") as select:
            bi = block_influence(stats.cos_tokens)
            removed = lowest_k(bi, k)
        return self.removal_plan(model, budget, removed, {"block_influence": bi, "per_layer": bi}, calib,
                                 select.cost(capture_seconds=stats.seconds))
