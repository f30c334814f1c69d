"""Shortened-LLaMA's PPL criterion (Kim et al., arXiv 2402.02834): remove each block alone, measure the
calibration perplexity, prune the blocks whose removal hurts least. One shot.

Official code (Nota-NetsPresso/shortened-llm, `src/anal_block_sensitivity_ppl.py`, `src/block_prune.py`):
every block is scored by exp(mean next-token NLL) over the calibration samples with that block removed;
the ascending order is the pruning order; the "+" heuristic (keep blocks 0-3 and the last two) is applied
by default to every criterion (`keep_first=4`, `keep_last=2` here; 0 and 0 turn it off). Official
calibration: 10 BookCorpus samples of 128 tokens (seed 1234), BOS at the start only.
Deviations: the run's calibration spec (bench.data.calibration) replaces the BookCorpus samples; every block is
scored from one prefix pass per batch with the suffixes re-run per candidate (methods.bypass; `reuse=false`
runs the whole model per candidate, as the official code does; same losses).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from bench.core.costmeter import CostMeter
from methods import register
from methods.base import Budget, Pruner
from methods.bypass import bypass_losses
from methods.plus import prune_order


@register
class PPL(Pruner):
    name = "ppl"
    title = "Shortened-LLaMA PPL (one-block removal perplexity)"
    paper = "2402.02834"
    needs_calibration = True
    order = 54

    @dataclass(frozen=True)
    class Params:
        keep_first: int = 4  # the "+" heuristic: never prune the first blocks (official 4)
        keep_last: int = 2  # ... nor the last blocks (official 2)
        reuse: bool = True  # prefix states computed once per batch (same result; false: official cost)

        def __post_init__(self):
            if self.keep_first < 0 or self.keep_last < 0:
                raise ValueError("keep_first and keep_last must be >= 0")

    def plan(self, model, calib, budget: Budget):
        from bench.models import arch

        p = self.params
        calib = self.require_calib(calib)
        n = arch.num_layers(model)
        k = budget.to_layers(arch.layer_parameter_counts(model), arch.count_parameters(model))
        with CostMeter(next(model.parameters()).device) as meter:
            t0 = time.perf_counter()
            totals, tokens = bypass_losses(model, calib.batches(), [], list(range(n)), reuse=p.reuse)
            meter.add(tokens=tokens * n)
            search_seconds = time.perf_counter() - t0
        ppl = [math.exp(totals[i] / tokens) for i in range(n)]
        order = prune_order(dict(enumerate(ppl)), n, k, p.keep_first, p.keep_last, self.name)
        scores = {"perplexity_without_block": ppl, "order": order, "per_layer": ppl}
        plan = self.removal_plan(model, budget, order, scores, calib,
                                 {"search_seconds": search_seconds, "pruning": meter.result()})
        plan.notes.append(f"PPL pruning order (ascending calibration perplexity without the block, blocks "
                          f"0-{p.keep_first - 1} and the last {p.keep_last} kept): {order}.")
        return plan
