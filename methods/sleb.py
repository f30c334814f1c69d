"""SLEB (Song et al., ICML 2024, arXiv 2402.09025): iterative greedy removal of redundant blocks.

Each round, every alive block except the first `early_barrier` and the last `latter_barrier` alive ones is
bypassed in turn and the calibration next-token NLL (summed over tokens) of the resulting model is measured;
the block whose bypass costs least is removed permanently; repeat until the budget is met. Removal then
deletes the blocks (layer_idx renumbered, config updated, through bench.models.arch).

Official code (snu-mllab/SLEB, `sleb.py`, read via the project's notes in research/methods.md §6):
`early_barrier=1`, `latter_barrier=1`, `num_remove_blocks=7` of 32 (the budget here), the loss summed over
the calibration sequences. Deviations, all stated:
- Calibration: the run's calibration spec (bench.data.calibration: seeded windows of real text, default Wikipedia
  sample) instead of the official 128 shuffled WikiText-2 rows joined with blank lines and cut into a few
  2048-token sequences; the same windows every method sees.
- Cost: with `reuse=true` (default) the states before each candidate are computed once per round and
  batch and every candidate runs only its suffix (methods.bypass); the official code runs the whole model
  per candidate (`reuse=false`, kept for measuring). Both give the same losses.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from bench.core.errors import BudgetError
from methods import register
from methods.base import Budget, Pruner, Search
from methods.bypass import bypass_losses
from methods.memo import replayed_cost, search_memo

log = logging.getLogger(__name__)


@register
class SLEB(Pruner):
    name = "sleb"
    title = "SLEB (iterative greedy block removal)"
    paper = "2402.09025"
    needs_calibration = True
    order = 52

    @dataclass(frozen=True)
    class Params:
        early_barrier: int = 1  # alive blocks at the start never removed (official default 1)
        latter_barrier: int = 1  # alive blocks at the end never removed (official default 1)
        reuse: bool = True  # compute the prefix states once per round (same result; false: official cost)

        def __post_init__(self):
            if self.early_barrier < 0 or self.latter_barrier < 0:
                raise ValueError("early_barrier and latter_barrier must be >= 0")

    def plan(self, model, calib, budget: Budget):
        from bench.models import arch

        p = self.params
        calib = self.require_calib(calib)
        n = arch.num_layers(model)
        k = budget.layers_for(model)
        removed: list[int] = []
        rounds = []
        memo = search_memo(calib, self.name, p, model)  # rounds a smaller budget already searched
        replayed, replayed_s = 0, 0.0
        with Search(model) as search:
            for r in range(k):
                alive = [i for i in range(n) if i not in removed]
                candidates = alive[p.early_barrier:len(alive) - p.latter_barrier]
                if not candidates:
                    raise BudgetError(f"SLEB cannot remove {k} of {n} layers with barriers "
                                      f"{p.early_barrier}/{p.latter_barrier}: no candidate left after "
                                      f"{len(removed)} removals", "lower the budget or the barriers")
                done = memo.get(r, candidates)
                if done is not None:
                    totals, tokens = {c: done["totals"][str(c)] for c in candidates}, done["tokens"]
                    replayed, replayed_s = replayed + 1, replayed_s + done["seconds"]
                else:
                    t_round = time.perf_counter()
                    totals, tokens = bypass_losses(model, calib.batches(), removed, candidates, reuse=p.reuse)
                    search.add(tokens=tokens * len(candidates))
                    memo.add(r, {"candidates": candidates, "totals": {str(c): totals[c] for c in candidates},
                                 "tokens": tokens, "seconds": time.perf_counter() - t_round})
                best = min(candidates, key=lambda c: (totals[c], c))
                removed.append(best)
                log.info("sleb round %d/%d: removed layer %d of %d candidates (calibration NLL %.4f) at %.0f s",
                         len(removed), k, best, len(candidates), totals[best] / tokens, search.elapsed())
                rounds.append({"removed": best, "mean_nll": {str(c): totals[c] / tokens for c in candidates}})
        scores = {"order": list(removed), "rounds": rounds}
        plan = self.removal_plan(model, budget, removed, scores, calib,
                                 search.cost(**replayed_cost(replayed, replayed_s)))
        plan.notes.append(f"SLEB removal order (dense indices): {removed}; each round's calibration NLL per "
                          f"candidate is in scores.rounds ({'prefix states reused' if p.reuse else 'full forwards'}).")
        return plan
