"""LaCo's search against the official notebook's loop, ported verbatim onto a synthetic similarity."""

from __future__ import annotations

import random

import pytest
import torch
from tiny import tiny_model

import methods
from bench.models import arch
from methods import laco as laco_module
from methods.base import Budget

N_LAYERS, C, T = 12, 3, 0.5


SALT = {0: "17"}  # the synthetic similarity's seed (set per test case)


def _similarity_of(partition: tuple[int, ...]) -> float:
    """A fixed pseudo-random similarity per compressed structure (the tuple of group-start layers)."""
    return random.Random(SALT[0] + ":" + ",".join(map(str, partition))).random()


def official_groups(n_layers: int, merge_layers: int, interval: int, threshold: float, highest: int,
                    lowest: int = 0) -> list[tuple[int, ...]]:
    """The notebook's loop (laco-baic-13B.ipynb / laco_llama-13b.ipynb), the model a list of groups."""
    model = [(i,) for i in range(n_layers)]

    def merge_layers_return_model(model, merge_base_lay, merge_layer_num):
        merge_layer_num = min(merge_layer_num, len(model) - merge_base_lay - 1)
        merged = sum(model[merge_base_lay:merge_base_lay + 1 + merge_layer_num], ())
        return model[:merge_base_lay] + [merged] + model[merge_base_lay + 1 + merge_layer_num:]

    lay = highest - merge_layers
    while lay >= lowest:
        tmp = merge_layers_return_model(model, lay, merge_layers - 1)
        sim_value = _similarity_of(tuple(g[0] for g in tmp))
        if sim_value > threshold:
            model = tmp
            lay -= interval
            if lay >= len(model):
                lay = len(model) - 1 - merge_layers
        else:
            lay -= 1
    return [g for g in model if len(g) > 1]


@pytest.fixture
def synthetic(monkeypatch):
    """LaCo's similarity replaced by `_similarity_of` the candidate's structure (layers tagged by index)."""
    def final_states(model, ids):
        return torch.tensor([float(layer._laco_tag) for layer in arch.decoder_layers(model)])

    monkeypatch.setattr(laco_module, "_final_states", final_states)
    monkeypatch.setattr(laco_module, "_similarity",
                        lambda dense, cand: _similarity_of(tuple(int(t) for t in cand.tolist())))


class _Calib:
    def batches(self):
        yield torch.zeros(1, 4, dtype=torch.long), None


# salt 17 separates the official rules from the old ones: starting at H = n (the final layer in the first
# group) or clamping after every accepted merge both give other groups (checked below)
@pytest.mark.parametrize(("interval", "seed_threshold", "salt"),
                         [(1, 0.4, "17"), (1, 0.3, "17"), (1, T, "3"), (2, T, "5"), (3, 0.4, "7")])
def test_search_reproduces_the_official_notebook_groups(synthetic, interval, seed_threshold, salt, monkeypatch):
    monkeypatch.setitem(SALT, 0, salt)
    model, _ = tiny_model("llama", n_layers=N_LAYERS)
    for i, layer in enumerate(arch.decoder_layers(model)):
        layer._laco_tag = i
    expected = official_groups(N_LAYERS, C, interval, seed_threshold, highest=N_LAYERS - 1)
    removed = sum(len(g) - 1 for g in expected)
    assert expected, "the synthetic case must accept at least one merge"
    if salt == "17":  # the discriminating case: overlapping re-merges, and H matters
        assert any(len(g) > C for g in expected)
        assert official_groups(N_LAYERS, C, interval, seed_threshold, highest=N_LAYERS) != expected
    pruner = methods.create("laco", {"layers_per_merge": C, "interval": interval, "threshold": seed_threshold,
                                     "relax_step": 0.0, "n_sentences": 1})
    # a budget the search cannot reach, so only the official stopping rule (l < L) ends it
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pruner, "require_calib", lambda calib: _Calib())
        plan = pruner.plan(model, None, Budget(layers=N_LAYERS - 1))
    assert [tuple(g) for g in plan.scores["groups"]] == expected
    assert plan.layers_removed == removed


def test_default_high_leaves_the_final_layer_out_of_the_first_group(synthetic):
    model, _ = tiny_model("llama", n_layers=N_LAYERS)
    for i, layer in enumerate(arch.decoder_layers(model)):
        layer._laco_tag = i
    pruner = methods.create("laco", {"layers_per_merge": C, "threshold": -1.0, "relax_step": 0.0})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pruner, "require_calib", lambda calib: _Calib())
        plan = pruner.plan(model, None, Budget(layers=2))
    first = plan.scores["trials"][0]
    assert first["layer"] == N_LAYERS - 1 - C and first["layer"] + first["group"] - 1 == N_LAYERS - 2


def test_official_merge_names_the_last_layer_of_the_group_as_survivor(synthetic):
    model, _ = tiny_model("llama", n_layers=6)
    for i, layer in enumerate(arch.decoder_layers(model)):
        layer._laco_tag = i
    dense = [layer.mlp.down_proj.weight.detach().clone() for layer in arch.decoder_layers(model)]
    pruner = methods.create("laco", {"merge": "official", "layers_per_merge": 2, "threshold": -1.0,
                                     "relax_step": 0.0})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pruner, "require_calib", lambda calib: _Calib())
        plan = pruner.plan(model, None, Budget(layers=1))
    (group,) = plan.scores["groups"]
    assert plan.removed_original == [group[0]]  # the base goes, the group's last layer survives
    pruned = pruner.apply(model, plan)
    kept = [i for i in range(6) if i not in plan.removed_original]
    for pos, orig in enumerate(kept):  # every surviving layer holds the linear weights it is named after
        torch.testing.assert_close(arch.decoder_layers(pruned)[pos].mlp.down_proj.weight, dense[orig])
