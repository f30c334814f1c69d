"""FinerCut (Zhang et al., arXiv 2405.18218): greedy removal of attention and MLP sublayers, each step the one
whose removal moves the model's output distribution least from the dense model's.

Official code (YaNgZhAnG-V5/llm_dissect @e1b641a, `scripts/prune_layer.py` `greedy_pruning`, evaluator
`dissect/evaluators/output.py` `Output`, config `configs/llama3_8b.yaml`: `distance_metric: js_divergence`):
the targets are every `o_proj` and `down_proj` (`--prune-level am`); a target is pruned by masking its output
to zero (which skips the sublayer: the norm before it feeds nothing else). Each step masks every remaining
target together with those already pruned and keeps the one of lowest divergence to the dense logits
(`list.index(min)`: the first of equals in the target list, module names sorted as strings). The divergence is
the evaluator's "js_divergence": 0.5 * (F.kl_div(log_softmax(dense), M) + F.kl_div(log_softmax(pruned), M))
with M the mean of the two softmaxes and reduction "mean" (over every position and vocabulary entry): note
F.kl_div(input, target) is KL(target || input), so this is 0.5 (KL(M||P) + KL(M||Q)), not the textbook
0.5 (KL(P||M) + KL(Q||M)); `divergence=js` computes the textbook one, `js_official` (default) the code's.
`-x/--exclude` (default 0.0): the first int(2L * x / 2) + 1 layers are left out of the candidates until
int(2L * x) + 1 sublayers are pruned, then appended to the list (so with the default, layer 0 waits one step).

Deviations, stated: calibration is the run's windows (bench.data.calibration) instead of 10 x 256 WikiText-2 tokens
(`configs/_base_/datasets.yaml`); the budget converts to units as for every sub-layer method (the official
script saves masks at int(2L * rate) units); prefix states are reused per round (`reuse=false`: the official
full forwards; same logits). The dense logits are kept in fp32: n_samples x seq_len x vocab x 4 bytes
(0.8 GB for 32 x 128 windows of SmolLM2).
"""

from __future__ import annotations

from collections.abc import Callable
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


class Divergence(Metric):
    """The evaluator's divergence between the dense and the candidate's next-token distributions."""

    def __init__(self, dense: Callable[[], list[torch.Tensor]], kind: str):
        self.compute_dense = dense  # called once, at the first computed round (none when every round is replayed)
        self.dense: list[torch.Tensor] = []  # fp32 log-softmax of the dense logits, per batch
        self.kind = kind
        self.sums: dict[Unit, float] = {}
        self.count = 0

    def reset(self, candidates):
        if not self.dense:
            self.dense = self.compute_dense()
            self.count = sum(int(d.numel()) for d in self.dense)
        self.sums = {c: 0.0 for c in candidates}

    def add(self, unit, batch, logits, ids, mask):
        total = 0.0
        for row in range(logits.shape[0]):  # one sequence at a time: bounded memory
            p = self.dense[batch][row]
            q = F.log_softmax(logits[row].float(), dim=-1)
            if self.kind == "kl":  # F.kl_div(log_softmax(pruned), softmax(dense)): KL(dense || pruned)
                total += float(F.kl_div(q, p, reduction="sum", log_target=True))
                continue
            m = 0.5 * (p.exp() + q.exp())
            if self.kind == "js_official":
                total += 0.5 * float(F.kl_div(p, m, reduction="sum") + F.kl_div(q, m, reduction="sum"))
            else:  # textbook JS: 0.5 KL(P||M) + 0.5 KL(Q||M)
                log_m = m.log()
                total += 0.5 * float(F.kl_div(log_m, p, reduction="sum", log_target=True)
                                     + F.kl_div(log_m, q, reduction="sum", log_target=True))
        self.sums[unit] += total

    def value(self, unit):
        return self.sums[unit] / self.count


def name_key(unit: Unit) -> str:
    """The official target order: module names sorted as strings (model.layers.{i}.mlp.down_proj <
    model.layers.{i}.self_attn.o_proj; layer 1 < 10 < 11 < 2)."""
    kind, i = unit
    return f"{i}.{'mlp.down_proj' if kind == 'mlp' else 'self_attn.o_proj'}"


@register
class FinerCut(Pruner):
    name = "finercut"
    title = "FinerCut (greedy attention / MLP sublayer removal by output divergence)"
    paper = "2405.18218"
    needs_calibration = True
    order = 63

    @dataclass(frozen=True)
    class Params:
        divergence: str = "js_official"  # js_official (the evaluator's formula) | js (textbook) | kl
        exclude: float = 0.0  # official -x: share of front layers held back at first (see the docstring)
        prune_level: str = "am"  # am (attention and MLP), a (attention only), m (MLP only): official -lv
        reuse: bool = True  # prefix states reused per round (same result; false: official cost)

        def __post_init__(self):
            if self.divergence not in ("js_official", "js", "kl"):
                raise ValueError(f"divergence must be js_official, js or kl, not {self.divergence!r}")
            if not 0.0 <= self.exclude < 1.0:
                raise ValueError("exclude must be in [0, 1)")
            if self.prune_level not in ("am", "a", "m"):
                raise ValueError(f"prune_level must be am, a or m, not {self.prune_level!r}")

    def plan(self, model, calib, budget: Budget):
        from bench.models import arch

        p = self.params
        calib = self.require_calib(calib)
        n = arch.num_layers(model)
        kinds = {"am": ("attn", "mlp"), "a": ("attn",), "m": ("mlp",)}[p.prune_level]
        targets = sorted(((k, i) for k in kinds for i in range(n)), key=name_key)
        total = len(targets)
        n_excluded = int(total * p.exclude / 2) + 1
        excluded = [u for u in targets if u[1] < n_excluded]
        release_after = int(total * p.exclude) + 1
        initial = [u for u in targets if u not in excluded]

        def candidates(chosen: list[Unit]) -> list[Unit]:
            order = initial + (excluded if len(chosen) >= release_after else [])
            return [u for u in order if u not in chosen]

        batches = list(calib.batches())

        @torch.inference_mode()
        def dense() -> list[torch.Tensor]:
            return [F.log_softmax(model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float(), -1)
                    for ids, mask in batches]

        with Search(model) as search:
            metric = Divergence(dense, p.divergence)
            found = greedy_search(model, batches, metric, candidates,
                                  budget_target(model, budget), unit_sizes(model), self.name, reuse=p.reuse,
                                  memo=search_memo(calib, self.name, p, model))
            dense_forwards = len(batches) if metric.dense else 0
            metric.dense.clear()
            search.add(tokens=(found.forwards + dense_forwards) * int(batches[0][0].numel()))
        attn, mlp = to_lists(found.chosen)
        scores = {"order": [unit_name(u) for u in found.chosen], "rounds": found.rounds,
                  "divergence": [r["scores"][r["removed"]] for r in found.rounds]}
        cost = search.cost(**replayed_cost(found.replayed, found.replayed_seconds))
        plan = self.sublayer_plan(model, budget, attn, mlp, scores, calib, cost)
        plan.notes.append(f"FinerCut removal order (dense layers): {scores['order']}; each round's {p.divergence} "
                          f"to the dense model per candidate is in scores.rounds.")
        return plan
