"""Every method on real SmolLM2-135M: plan on a real Wikipedia-sample calibration, apply, export, reload
with stock transformers and get the same logits."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from transformers import AutoModelForCausalLM

import methods
from bench.data.calibration import Calibration, CalibSpec
from bench.models import arch, zoo
from bench.models.export import save_pruned
from methods.base import Budget

pytestmark = [pytest.mark.real, pytest.mark.slow]

# CPU-sized: LaCo merges pairs of layers over 4 calibration sentences (as the quick preset does)
# the sub-layer searches run the model once per candidate and round: MLP sublayers only (30 candidates)
PARAMS = {"laco": {"layers_per_merge": 2, "n_sentences": 4}, "blockpruner": {"block_type": "mlp"},
          "finercut": {"prune_level": "m"}}
SMALL_CALIB = {"sleb": 2, "ppl": 2, "blockpruner": 1, "finercut": 1}


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
    if name in SMALL_CALIB:  # the searches run the model once per candidate (and round): 2 windows of 64
        calib = Calibration(CalibSpec(source="wikipedia", n_samples=SMALL_CALIB[name], seq_len=64), dense, tok)
    plan = pruner.plan(model, calib if pruner.needs_calibration else None, Budget(layers=4))
    units = plan.units()  # sub-layer methods: a budget of 4 mean layers in sublayers, whole blocks where both go
    assert (plan.layers_removed == 4 or units["attn"] or units["mlp"]) and 0 < plan.param_ratio < 0.2
    pruner.apply(model, plan)
    n_after = 30 - plan.layers_removed
    assert arch.num_layers(model) == model.config.num_hidden_layers == n_after
    out = save_pruned(model, tok, plan, tmp_path / "out", base_model=zoo.DEFAULT_MODEL)
    dtype = next(model.parameters()).dtype
    reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=dtype).eval()
    assert reloaded.config.num_hidden_layers == n_after
    ids = tok(["The Eiffel Tower is a wrought-iron lattice tower in Paris."], return_tensors="pt").input_ids
    with torch.inference_mode():
        torch.testing.assert_close(reloaded(ids).logits, model(ids).logits)
    assert json.loads((out / "plan.json").read_text())["method"] == name


@pytest.mark.parametrize("name", ["shortgpt", "last"])
def test_lora_healing_on_real_smollm2_exports_merged(name, smollm2, tmp_path):
    from bench.data.training_text import TrainData, TrainDataSpec
    from bench.run.pipeline import prune

    dense, tok, calib = smollm2
    pruner = methods.create(name, {"heal": "lora", "lora_samples": 4, "lora_seq_len": 64, "lora_batch": 2})
    result = prune(dense, pruner, Budget(layers=4), calib if pruner.needs_calibration else None,
                   heal_data=TrainData(TrainDataSpec(source="c4"), tok))
    model, plan = result.model, result.plan
    assert plan.cost["training"]["steps"] == 2 and plan.params["heal"] == "lora"
    assert not [n for n, _ in model.named_modules() if "lora" in n]
    out = save_pruned(model, tok, plan, tmp_path / "out", base_model=zoo.DEFAULT_MODEL)
    reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=next(model.parameters()).dtype).eval()
    ids = tok(["The Eiffel Tower is a wrought-iron lattice tower in Paris."], return_tensors="pt").input_ids
    with torch.inference_mode():
        torch.testing.assert_close(reloaded(ids).logits, model(ids).logits)
