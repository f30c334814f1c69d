"""Shared machinery of the sub-layer methods (LLM-Drop, BlockPruner, FinerCut): units, budgets, and a greedy
search over attention / MLP sublayers that reuses prefix states as SLEB does (methods.bypass).

A unit is ("attn", i) or ("mlp", i): the attention or MLP sublayer of dense layer i (bench.models.sublayer drops it
with its norm). The budget converts to units the same way for every method (`Budget.take_next`): units
leave in the method's order while the next one brings the removed parameters nearer the budget's parameter
target (ratio x total parameters, or N mean-sized layers).

Greedy search, one round per removed unit: the already chosen units are dropped (bench.models.sublayer.skipped) and
every remaining candidate is tried on top. Dropping a sublayer of layer c leaves the states entering layers
0..c unchanged, so one partial forward per batch and round records the state entering every layer; a
candidate at layer c then runs only layers c.. (the layers before it are stubs that hand over the recorded
state) plus the LM head. `reuse=False` runs the whole model per candidate (the official cost); both compute
the suffix from bitwise the same prefix state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch

from bench.core.errors import BudgetError
from bench.models import arch, sublayer
from methods.base import Budget
from methods.bypass import _constant, _identity, _prefix_states, _returns_tuple, patched
from methods.memo import SearchMemo

log = logging.getLogger(__name__)

Unit = tuple[str, int]


def unit_name(unit: Unit) -> str:
    return f"{unit[0]}{unit[1]}"


def unit_sizes(model) -> dict[Unit, int]:
    """Parameters each unit removes; ("block", i) is the whole layer."""
    per = sublayer.unit_parameters(model)
    out: dict[Unit, int] = {(k, i): n for k in ("attn", "mlp") for i, n in enumerate(per[k])}
    out.update({("block", i): n for i, n in enumerate(arch.layer_parameter_counts(model))})
    return out


def budget_target(model, budget: Budget) -> float:
    return budget.target_parameters(arch.layer_parameter_counts(model), arch.count_parameters(model))


def take_in_order(order: Sequence[Unit], sizes: dict[Unit, int], target: float, method: str) -> list[Unit]:
    """The prefix of `order` the budget removes (Budget.prefix_length); refuses to remove every unit."""
    k = Budget.prefix_length([sizes[u] for u in order], target)
    if k >= len(order):
        raise BudgetError(f"{method}: the budget ({target:,.0f} parameters) would drop all {len(order)} candidate "
                          "units", "lower the ratio, or use a mode with more units (joint)")
    return list(order[:k])


def to_lists(units: Sequence[Unit]) -> tuple[list[int], list[int]]:
    """(attention layers, MLP layers) of a unit list; a block counts in both."""
    attn = sorted({i for k, i in units if k in ("attn", "block")})
    mlp = sorted({i for k, i in units if k in ("mlp", "block")})
    return attn, mlp


class Metric:
    """What a greedy search minimises: fed every candidate's logits batch by batch."""

    def reset(self, candidates: Sequence[Unit]) -> None:
        raise NotImplementedError

    def add(self, unit: Unit, batch: int, logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> None:
        raise NotImplementedError

    def value(self, unit: Unit) -> float:
        raise NotImplementedError


class SearchResult(NamedTuple):
    chosen: list[Unit]              # removal order
    rounds: list[dict[str, Any]]    # per round: the unit removed and every candidate's score
    forwards: int                   # candidate forwards computed (replayed rounds cost none)
    replayed: int                   # rounds taken from the memo
    replayed_seconds: float         # what those rounds took when they were computed


@torch.inference_mode()
def greedy_search(model, batches: list[tuple[torch.Tensor, torch.Tensor]], metric: Metric,
                  candidates: Callable[[list[Unit]], list[Unit]], target: float, sizes: dict[Unit, int],
                  method: str, reuse: bool = True, memo: SearchMemo | None = None) -> SearchResult:
    """Remove units one at a time, each round the candidate of lowest `metric` (ties: the first in the list
    `candidates(chosen)` returns, the official iteration order), until the budget is met.

    `memo` (methods.memo.search_memo): the rounds of an earlier search with the same model, windows, metric and
    candidate rule, each with its candidates and their scores; a round whose candidates match is replayed from it
    instead of computed (the same scores, so the same choices), and every round computed is added to it
    (also the last, whose best candidate the budget refused: a larger budget starts from it)."""
    layers = arch.decoder_layers(model)
    memo = SearchMemo() if memo is None else memo
    chosen: list[Unit] = []
    rounds: list[dict[str, Any]] = []
    removed_params, forwards, replayed, replayed_s = 0, 0, 0, 0.0
    tuple_out = _returns_tuple(model, *batches[0])
    identity = _identity(tuple_out)
    t0 = time.perf_counter()
    while True:
        cands = candidates(chosen)
        if not cands:
            raise BudgetError(f"{method}: no candidate sublayer left after {len(chosen)} removals",
                              "lower the budget")
        smallest = min(sizes[c] for c in cands)
        if not Budget.take_next(removed_params, max(sizes[c] for c in cands), target) and \
                not Budget.take_next(removed_params, smallest, target):
            break  # no candidate would bring the removed parameters nearer the target
        names = [unit_name(c) for c in cands]
        done = memo.get(len(chosen), names)
        replay = done is not None
        if replay:
            values = {c: done["values"][unit_name(c)] for c in cands}
            replayed, replayed_s = replayed + 1, replayed_s + done["seconds"]
        else:
            t_round = time.perf_counter()
            values = _round(model, layers, batches, metric, cands, chosen, reuse, tuple_out, identity)
            forwards += len(cands) * len(batches)
            memo.add(len(chosen), {"candidates": names, "values": {unit_name(c): values[c] for c in cands},
                                   "seconds": time.perf_counter() - t_round})
        best = min(cands, key=lambda c: (values[c], cands.index(c)))
        if not Budget.take_next(removed_params, sizes[best], target):
            break  # the best candidate would overshoot: stop here (the tie rule of Budget.take_next)
        chosen.append(best)
        removed_params += sizes[best]
        rounds.append({"removed": unit_name(best), "scores": {unit_name(c): values[c] for c in cands}})
        log.info("%s round %d: dropped %s of %d candidates (%.6g), %.1f%% of parameters at %.0f s%s", method,
                 len(chosen), unit_name(best), len(cands), values[best],
                 100 * removed_params / arch.count_parameters(model), time.perf_counter() - t0,
                 " (replayed)" if replay else "")
    if not chosen:
        raise BudgetError(f"{method}: the budget removes no sublayer", "raise the budget")
    return SearchResult(chosen, rounds, forwards, replayed, replayed_s)


def _round(model, layers, batches, metric: Metric, cands: list[Unit], chosen: list[Unit], reuse: bool,
           tuple_out, identity) -> dict[Unit, float]:
    """One round: every candidate dropped on top of `chosen`, its score over every batch."""
    metric.reset(cands)
    with sublayer.skipped(model, chosen):
        for b, (ids, mask) in enumerate(batches):
            states = _prefix_states(model, ids, mask, list(range(len(layers))), max(c[1] for c in cands), {}) \
                if reuse else {}
            for cand in cands:
                stubs = {}
                if reuse and cand[1] > 0:
                    stubs = {i: identity for i in range(cand[1])}
                    stubs[cand[1] - 1] = _constant(states[cand[1]], tuple_out)
                with patched(layers, stubs), sublayer.skipped(model, [cand]):
                    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
                metric.add(cand, b, logits, ids, mask)
    return {c: metric.value(c) for c in cands}
