"""The last-layer baseline ("reverse order", Lu et al., arXiv 2411.15558): drop the final k layers.

By default the very last layer goes too, as in the official code (32-layer models keep layers 0-23);
`keep_last=true` drops the k layers just before it instead (Gromov et al.'s simpler variant).
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.base import Budget, Pruner


class LastLayers(Pruner):
    name = "last"
    title = "Last-layer baseline (reverse order)"
    paper = "2411.15558"
    needs_calibration = False

    @dataclass(frozen=True)
    class Params:
        keep_last: bool = False

    def plan(self, model, calib, budget: Budget):
        from bench import arch

        n = arch.num_layers(model)
        k = budget.to_layers(arch.layer_parameter_counts(model), arch.count_parameters(model))
        stop = n - 1 if self.params.keep_last else n
        return self.removal_plan(model, budget, list(range(stop - k, stop)), {}, None)
