"""Random layers: k layers drawn uniformly without replacement with a seeded generator. The floor every
method must beat."""

from __future__ import annotations

import random
from dataclasses import dataclass

from methods import register
from methods.base import Budget, Pruner


@register
class RandomLayers(Pruner):
    name = "random"
    title = "Random layers (seeded floor)"
    paper = ""
    needs_calibration = False
    order = 60

    @dataclass(frozen=True)
    class Params:
        seed: int = 0

    def plan(self, model, calib, budget: Budget):
        from bench.models import arch

        n = arch.num_layers(model)
        k = budget.layers_for(model)
        removed = sorted(random.Random(self.params.seed).sample(range(n), k))
        return self.removal_plan(model, budget, removed, {}, None)
