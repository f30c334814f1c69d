"""Shortened-LLaMA's "+" heuristic (Kim et al., arXiv 2402.02834; official `block_prune.py`): never prune
the first `keep_first` and the last `keep_last` blocks, whatever the criterion says (defaults 4 and 2, on
by default for every criterion unless `--no_plus_heuristic`)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.core.errors import BudgetError
from methods.base import Budget, Pruner, Search


@dataclass(frozen=True)
class PlusParams:
    """The "+" heuristic's parameters, for the Params of the criteria that apply it."""

    keep_first: int = 4  # the "+" heuristic: never prune the first blocks (official 4)
    keep_last: int = 2  # ... nor the last blocks (official 2)

    def __post_init__(self):
        if self.keep_first < 0 or self.keep_last < 0:
            raise ValueError("keep_first and keep_last must be >= 0")


def prune_order(scores: dict[int, float], n_layers: int, k: int, keep_first: int, keep_last: int,
                method: str) -> list[int]:
    """The k lowest-scoring layers outside the protected ends, in pruning order (ties: lower index)."""
    protected = set(range(min(keep_first, n_layers))) | set(range(max(0, n_layers - keep_last), n_layers))
    order = [i for i in sorted(scores, key=lambda i: (scores[i], i)) if i not in protected]
    if len(order) < k:
        raise BudgetError(f"{method} keeps the first {keep_first} and last {keep_last} of {n_layers} layers, "
                          f"leaving {len(order)} candidates for a budget of {k} layers",
                          "lower the budget, or --param keep_first=... keep_last=...")
    return order[:k]


class PlusCriterion(Pruner):
    """A one-shot criterion under the "+" heuristic (PPL, Taylor+): each block scored once
    (`layer_scores`), the lowest `k` outside the protected ends pruned. Subclasses name the score's record
    key (`score_name`), the criterion (`criterion`) and what ascending means (`ranked_by`) for the plan's note."""

    score_name: str = ""
    criterion: str = ""
    ranked_by: str = ""

    def layer_scores(self, model, calib, search: Search) -> list[float]:
        raise NotImplementedError

    def plan(self, model, calib, budget: Budget):
        from bench.models import arch

        p = self.params
        calib = self.require_calib(calib)
        n = arch.num_layers(model)
        k = budget.layers_for(model)
        with Search(model) as search:
            scores = self.layer_scores(model, calib, search)
        order = prune_order(dict(enumerate(scores)), n, k, p.keep_first, p.keep_last, self.name)
        plan = self.removal_plan(model, budget, order, {self.score_name: scores, "order": order, "per_layer": scores},
                                 calib, search.cost())
        plan.notes.append(f"{self.criterion} pruning order (ascending {self.ranked_by}, blocks 0-{p.keep_first - 1} "
                          f"and the last {p.keep_last} kept): {order}.")
        return plan
