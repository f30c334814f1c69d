"""LaCo (Yang et al., arXiv 2402.11187): collapse groups of later layers into earlier ones.

Search (paper's algorithm, as in the official notebooks): start at l = H - C, where H is the index of the
final layer (the notebooks' H = 39 on 40 layers, so the first group stops just before the final layer);
merge the C layers l..l+C-1 of the *current* compressed model into layer l (fewer when the model ends
first; RDSC: theta_l + sum_k (theta_{l+k} - theta_l) over the linear weights; norms of layer l kept);
accept when the mean cosine between the flattened final hidden states (post final norm) of the dense model
and of the candidate, over the calibration sentences, exceeds T, then l -= I, and only if that l is no
longer inside the compressed model, l = (its layer count) - 1 - C; else l -= 1; stop below the low bound
L. With I = 1 the next candidate therefore starts one layer lower and takes in the layer just merged
(overlapping groups), as the official code does.

Harness additions, both stated in the plan: (1) a stop at the layer budget — the last merge shrinks its
group so that exactly the budgeted number of layers goes; (2) when a pass ends short of the budget and
`relax_step` > 0, the threshold is lowered to the best similarity rejected in that pass (and by at least
`relax_step`), so the next pass accepts at least that merge, and the search repeats on the compressed model
(the paper has no budget; its ratio emerges from T). Each pass thus makes progress: at most about
k / (C - 1) extra passes.

`merge=official` reproduces the official notebook's in-place update, whose result is the last layer of
each group (layer dropping in disguise, LaCo issues #4/#5): its linear weights are the group's last
layer's, so `removed_original` names that layer as the survivor (the base layer's norms stay);
`merge=paper` (default) is Eq. 1, and the base layer is the survivor.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Literal

import torch

from methods import register
from methods.base import Budget, PrunePlan, Pruner, calib_provenance
from methods.ops import Merge, to_dict


@register
class LaCo(Pruner):
    name = "laco"
    title = "LaCo (layer collapse, RDSC merge)"
    paper = "2402.11187"
    needs_calibration = True
    order = 30

    @dataclass(frozen=True)
    class Params:
        merge: Literal["paper", "official"] = "paper"
        layers_per_merge: int = 4  # C (official: 7 for Llama2-13B, 3 for Baichuan2-13B)
        interval: int = 1  # I
        threshold: float = 0.45  # T (official Llama2-13B value)
        low: int = 0  # L: lowest layer a merge may start at
        high: int = -1  # H: merges start at H - C; -1 means the final layer's index (official: H = 39 of 40)
        n_sentences: int = 10  # calibration sequences compared (paper: 10 for Llama2)
        relax_step: float = 0.05  # least drop of T after a pass short of the budget; 0 disables
        min_threshold: float = -1.0  # relaxation floor; -1 (cosine's minimum) always meets the budget

        def __post_init__(self):
            if self.layers_per_merge < 2 or self.interval < 1 or self.n_sentences < 1:
                raise ValueError("layers_per_merge >= 2, interval >= 1 and n_sentences >= 1 are required")

    def plan(self, model, calib, budget: Budget) -> PrunePlan:
        from bench.models import arch
        from methods.surgery import merge_rule, mergeable_names

        p = self.params
        t0 = time.perf_counter()
        per_layer = arch.layer_parameter_counts(model)
        total = arch.count_parameters(model)
        k = budget.to_layers(per_layer, total)
        batches = [ids for ids, _ in self.require_calib(calib).batches()]
        ids = torch.cat(batches)[: p.n_sentences]
        dense_out = _final_states(model, ids)
        work = copy.deepcopy(model)
        origin = [[i] for i in range(len(per_layer))]  # dense layers folded into each current layer
        survivor = list(range(len(per_layer)))  # the dense layer whose linear weights each current layer holds
        ops, trials, threshold, removed = [], [], p.threshold, 0
        while removed < k:
            best_rejected = float("-inf")
            n = arch.num_layers(work)
            high = n - 1 if p.high < 0 else min(p.high, n - 1)
            layer = high - p.layers_per_merge
            while layer >= p.low and removed < k:
                n = arch.num_layers(work)
                group = min(p.layers_per_merge, k - removed + 1, n - layer)
                if group < 2:
                    layer -= 1
                    continue
                others = list(range(layer + 1, layer + group))
                snapshot = arch.snapshot_layers(work, modified=[layer])  # the merge changes `layer` in place
                base = arch.decoder_layers(work)[layer]
                arch.merge_layers(work, layer, others, merge_rule(p.merge, mergeable_names(base)))
                sim = _similarity(dense_out, _final_states(work, ids))
                ok = sim > threshold
                trials.append({"layer": layer, "group": group, "similarity": sim, "threshold": threshold,
                               "accepted": ok})
                if ok:
                    ops.append(to_dict(Merge(base=layer, others=others, rule=p.merge)))
                    origin[layer:layer + group] = [sum(origin[layer:layer + group], [])]
                    kept = survivor[layer + group - 1] if p.merge == "official" else survivor[layer]
                    survivor[layer:layer + group] = [kept]
                    removed += group - 1
                    layer -= p.interval
                    if layer >= arch.num_layers(work):  # the official clamp, only when l left the model
                        layer = arch.num_layers(work) - 1 - p.layers_per_merge
                else:
                    arch.restore_layers(work, snapshot)
                    best_rejected = max(best_rejected, sim)
                    layer -= 1
            next_threshold = min(threshold - p.relax_step, best_rejected - 1e-6)
            if removed >= k or p.relax_step <= 0 or next_threshold < p.min_threshold:
                break
            threshold = next_threshold
        del work
        removed_original = sorted(i for group, kept in zip(origin, survivor, strict=True) for i in group if i != kept)
        plan = PrunePlan(
            method=self.name, n_layers=len(per_layer), ops=ops, removed_original=removed_original,
            budget=budget.to_dict(), layers_removed=removed, params_total=total,
            params_removed=sum(per_layer[i] for i in removed_original),
            scores={"trials": trials, "groups": [g for g in origin if len(g) > 1], "final_threshold": threshold},
            params=self.params_dict(), calib=calib_provenance(calib),
            cost={"select_seconds": time.perf_counter() - t0},
        )
        if removed < k:
            plan.notes.append(f"threshold search stopped at {removed} of {k} budgeted layers")
        if threshold != p.threshold:
            plan.notes.append(f"threshold relaxed from {p.threshold} to {threshold:.3f} to meet the budget")
        return plan


@torch.inference_mode()
def _final_states(model, ids: torch.Tensor) -> torch.Tensor:
    out = model(input_ids=ids, output_hidden_states=True, use_cache=False)
    return out.hidden_states[-1].float().reshape(ids.shape[0], -1)


def _similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=-1).mean())
