"""Every method on real SmolLM2-135M: plan on a real Wikipedia-sample calibration, apply, export, reload
with stock transformers and get the same logits."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from transformers import AutoModelForCausalLM

import methods
from bench import arch, zoo
from bench.calib import Calibration, CalibSpec
from bench.export import save_pruned
from methods.base import Budget

pytestmark = [pytest.mark.real, pytest.mark.slow]

# CPU-sized: LaCo merges pairs of layers over 4 calibration sentences (as the quick preset does)
PARAMS = {"laco": {"layers_per_merge": 2, "n_sentences": 4}}


@pytest.fixture(scope="module")
def smollm2():
    model, tok = zoo.load(zoo.DEFAULT_MODEL, device="cpu")
    calib = Calibration(CalibSpec(source="wikipedia", n_samples=8, seq_len=64, batch_size=8), model, tok)
    return model, tok, calib


@pytest.mark.parametrize("name", methods.list_methods())
def test_method_prunes_real_smollm2_and_the_export_reloads(name, smollm2, tmp_path):
    dense, tok, calib = smollm2
    model = copy.deepcopy(dense)
    pruner = methods.create(name, PARAMS.get(name))
    plan = pruner.plan(model, calib if pruner.needs_calibration else None, Budget(layers=4))
    assert plan.layers_removed == 4 and 0 < plan.param_ratio < 0.2
    pruner.apply(model, plan)
    assert arch.num_layers(model) == model.config.num_hidden_layers == 26
    out = save_pruned(model, tok, plan, tmp_path / "out", base_model=zoo.DEFAULT_MODEL)
    dtype = next(model.parameters()).dtype
    reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=dtype).eval()
    assert reloaded.config.num_hidden_layers == 26
    ids = tok(["The Eiffel Tower is a wrought-iron lattice tower in Paris."], return_tensors="pt").input_ids
    with torch.inference_mode():
        torch.testing.assert_close(reloaded(ids).logits, model(ids).logits)
    assert json.loads((out / "plan.json").read_text())["method"] == name
