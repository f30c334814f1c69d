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
from dataclasses import dataclass

from methods import register
from methods.base import Search
from methods.bypass import bypass_losses
from methods.plus import PlusCriterion, PlusParams


@register
class PPL(PlusCriterion):
    name = "ppl"
    title = "Shortened-LLaMA PPL (one-block removal perplexity)"
    paper = "2402.02834"
    needs_calibration = True
    order = 54
    score_name, criterion, ranked_by = "perplexity_without_block", "PPL", "calibration perplexity without the block"

    @dataclass(frozen=True)
    class Params(PlusParams):
        reuse: bool = True  # prefix states computed once per batch (same result; false: official cost)

    def layer_scores(self, model, calib, search: Search) -> list[float]:
        from bench.models import arch

        n = arch.num_layers(model)
        totals, tokens = bypass_losses(model, calib.batches(), [], list(range(n)), reuse=self.params.reuse)
        search.add(tokens=tokens * n)
        return [math.exp(totals[i] / tokens) for i in range(n)]
