"""One pruning job: plan on the dense model, apply to it (or a copy), heal. Shared by `bench prune` and
the runner, so both produce identical models for the same spec."""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from typing import Any

from bench.calib import Calibration
from methods.base import Budget, PrunePlan, Pruner

log = logging.getLogger(__name__)


@dataclass
class PruneResult:
    model: Any
    plan: PrunePlan
    heal_cost: dict[str, Any] | None
    seconds: float


def prune(model, pruner: Pruner, budget: Budget, calib: Calibration | None, *, copy_model: bool = True,
          heal_data: Any = None) -> PruneResult:
    """Plan on `model` (left unchanged when `copy_model`), apply, heal when the method trains."""
    start = time.perf_counter()
    plan = pruner.plan(model, calib if pruner.needs_calibration else None, budget)
    plan.cost.setdefault("plan_seconds", time.perf_counter() - start)
    pruned = copy.deepcopy(model) if copy_model else model
    pruner.apply(pruned, plan)
    heal_cost = pruner.heal_all(pruned, plan, heal_data)
    if heal_cost:
        plan.cost["training"] = heal_cost
    seconds = time.perf_counter() - start
    log.info("%s: removed dense layers %s (%d layers, %.2f %% of parameters) in %.1f s", pruner.name,
             plan.removed_original, plan.layers_removed, 100 * plan.param_ratio, seconds)
    return PruneResult(pruned, plan, heal_cost, seconds)
