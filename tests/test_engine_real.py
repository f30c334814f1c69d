"""The evaluation engine on real SmolLM2-135M (fp32) and real PIQA and ARC-Easy (100 documents each, a
seeded subset): per-choice log-likelihoods equal to plain lm-eval's within 1e-3 + 1e-4 |ll| and identical
predictions, for the dense model and for a pruned checkpoint exported and reloaded with stock transformers that
reuses the dense model's boundary states."""

from __future__ import annotations

import copy

import pytest
import torch
from test_engine import _plan, assert_same
from transformers import AutoModelForCausalLM

from bench.evaluate.engine import BoundaryStates, Reuse, bisection_order, first_changed_layer, shared_prefix
from bench.evaluate.multiple_choice import evaluate_accuracy
from bench.models import arch, zoo
from bench.models.export import save_pruned

pytestmark = [pytest.mark.real, pytest.mark.slow]

KW = dict(batch_size=8, limit=100, subset="random", subset_seed=0)


@pytest.mark.parametrize("task", ["piqa", "arc_easy"])
def test_engine_equals_plain_lm_eval_on_real_smollm2(task, tmp_path):
    TASKS = [task]
    dense, tok = zoo.load(zoo.DEFAULT_MODEL, device="cpu", dtype="float32")
    n = arch.num_layers(dense)
    states = BoundaryStates()
    plain_dense = evaluate_accuracy(dense, tok, TASKS, engine="lm-eval", **KW)
    engine_dense = evaluate_accuracy(dense, tok, TASKS, engine="prefix",
                                     reuse=Reuse(states, n, tuple(bisection_order(n)), share=0.25), **KW)
    assert_same(plain_dense, engine_dense, TASKS)

    removed = list(range(12, 20))   # a ShortGPT-like block at 25 %: the first changed layer is 12
    pruned = copy.deepcopy(dense)
    arch.remove_layers(pruned, removed)
    out = save_pruned(pruned, tok, _plan(dense, removed), tmp_path / "pruned", base_model=zoo.DEFAULT_MODEL)
    exported = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    shared = shared_prefix(dense, exported, first_changed_layer(_plan(dense, removed)))
    assert shared == 12
    plain = evaluate_accuracy(exported, tok, TASKS, engine="lm-eval", **KW)
    engine = evaluate_accuracy(exported, tok, TASKS, engine="prefix", reuse=Reuse(states, shared, (shared,)), **KW)
    assert_same(plain, engine, TASKS)
    assert engine.engine_stats["fallback"] is None
    assert {int(b) for b in engine.engine_stats["start_boundaries"]} <= set(range(1, shared + 1)) - {0}
    assert all(len(plain.samples[t]) == 100 for t in TASKS)
