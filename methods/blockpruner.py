"""BlockPruner (Zhong et al., ACL 2025 Findings, arXiv 2406.10594): greedy removal of attention and MLP
sublayers ("blocks") by calibration perplexity.

Official code (MrGGLS/BlockPruner @8210707, `block_search.py` `block_search_by_ppl`, `utils.evaluate_ppl`):
the candidates are the 2L sublayers (`--block-type mix`; `mha` or `mlp` alone), listed attention first then
MLP, each by ascending layer index. Each step masks every remaining candidate together with the blocks
already chosen (`MaskedLlamaDecoderLayer`: a masked attention is skipped with its input norm, a masked MLP
with its post-attention norm) and keeps the one of lowest perplexity (the first of equals: strict `<` in
that order). Perplexity = exp(mean over sequences of each sequence's mean next-token NLL), targets equal to
`pad_token_id` ignored when it is set (`ignore_pad=true`, as `evaluate_ppl` does).

Deviations, all stated and parameters where they are choices:
- Calibration: the run's calibration windows (bench.data.calibration; the same every method sees) instead of
  `--cal-nsamples` random Alpaca rows ("test" part of an 80/10/10 split, seed 42; code default 128, paper 256,
  scripts 32/64) joined with blank lines and cut into 2048-token sequences; CPU-sized.
- Budget: the official search runs `--del-block-num` steps; here the run's parameter budget converts to
  units as for every sub-layer method (methods.sublayers).
- Precision: the model's dtype (fp32 on CPU); the official default `--compute-dtype bf16`.
- Cost: prefix states reused per round (`reuse=true`); `reuse=false` runs the whole model per candidate as
  the official code does. Same losses.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from methods import register
from methods.base import Budget, Pruner, Search
from methods.memo import replayed_cost, search_memo
from methods.sublayers import (
    Metric,
    Unit,
    budget_target,
    greedy_search,
    to_lists,
    unit_name,
    unit_sizes,
)


class Perplexity(Metric):
    """exp(mean over sequences of the per-sequence mean NLL), as `utils.evaluate_ppl`."""

    def __init__(self, pad_token_id: int | None):
        self.pad = pad_token_id
        self.means: dict[Unit, list[torch.Tensor]] = defaultdict(list)

    def reset(self, candidates):
        self.means = defaultdict(list)

    def add(self, unit, batch, logits, ids, mask):
        labels = ids[:, 1:]
        nll = F.cross_entropy(logits[:, :-1].float().permute(0, 2, 1), labels, reduction="none")
        keep = mask[:, 1:].bool()
        if self.pad:  # the official loss ignores targets equal to a (truthy) pad_token_id
            keep = keep & (labels != self.pad)
        self.means[unit].append((nll * keep).sum(dim=1) / keep.sum(dim=1))

    def value(self, unit):
        return float(torch.exp(torch.cat(self.means[unit]).mean()))


@register
class BlockPruner(Pruner):
    name = "blockpruner"
    title = "BlockPruner (greedy attention / MLP sublayer removal by perplexity)"
    paper = "2406.10594"
    needs_calibration = True
    order = 62

    @dataclass(frozen=True)
    class Params:
        block_type: str = "mix"  # mix (attention and MLP sublayers), mha or mlp (official --block-type)
        ignore_pad: bool = True  # targets equal to pad_token_id leave the loss (official evaluate_ppl)
        reuse: bool = True  # prefix states reused per round (same result; false: official cost)

        def __post_init__(self):
            if self.block_type not in ("mix", "mha", "mlp"):
                raise ValueError(f"block_type must be mix, mha or mlp, not {self.block_type!r}")

    def plan(self, model, calib, budget: Budget):
        from bench.models import arch

        p = self.params
        calib = self.require_calib(calib)
        n = arch.num_layers(model)
        kinds = {"mix": ("attn", "mlp"), "mha": ("attn",), "mlp": ("mlp",)}[p.block_type]
        official_order = [(k, i) for k in kinds for i in range(n)]  # mha ids, then mlp ids

        def candidates(chosen: list[Unit]) -> list[Unit]:
            return [u for u in official_order if u not in chosen]

        pad = getattr(model.config, "pad_token_id", None) if p.ignore_pad else None
        batches = list(calib.batches())
        with Search(model) as search:
            found = greedy_search(model, batches, Perplexity(pad), candidates,
                                  budget_target(model, budget), unit_sizes(model), self.name, reuse=p.reuse,
                                  memo=search_memo(calib, self.name, p, model))
            search.add(tokens=found.forwards * int(batches[0][0].numel()))
        attn, mlp = to_lists(found.chosen)
        scores = {"order": [unit_name(u) for u in found.chosen], "rounds": found.rounds,
                  "perplexity": [r["scores"][r["removed"]] for r in found.rounds],
                  "log_perplexity": [math.log(r["scores"][r["removed"]]) for r in found.rounds]}
        cost = search.cost(**replayed_cost(found.replayed, found.replayed_seconds))
        plan = self.sublayer_plan(model, budget, attn, mlp, scores, calib, cost)
        plan.notes.append(f"BlockPruner removal order (dense layers): {scores['order']}; each round's calibration "
                          f"perplexity per candidate is in scores.rounds.")
        return plan
