"""LoRA healing after any method (`heal=lora`): what trains, the merge, the export, the parameters."""

import copy

import pytest
import torch
from tiny import FAMILIES, tiny_model
from transformers import AutoModelForCausalLM

import methods
from bench.core.errors import ConfigError, UnknownNameError
from bench.data.calibration import Calibration, CalibSpec
from bench.data.training_text import TrainData, TrainDataSpec
from bench.models.export import save_pruned
from bench.run.cells import may_train
from bench.run.pipeline import prune
from methods.base import Budget
from methods.lora import target_modules

TEXT = "\n\n".join(f"Entry {i}: the mill by the river ground {i % 9} sacks of wheat each morning before the market "
                   f"opened in the square of {'PQRSTU'[i % 6]}ford." for i in range(100))
FAST = {"heal": "lora", "lora_samples": 16, "lora_seq_len": 16, "lora_batch": 4, "lora_lr": 3e-3}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "train.txt"
    path.write_text(TEXT)
    return str(path)


def _roundtrip(model, tok, plan, tmp_path):
    out = save_pruned(model, tok, plan, tmp_path / "out", base_model="tiny")
    reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    ids = tok(["The mill by the river"], return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, model(ids).logits)


@pytest.mark.parametrize("name", ["shortgpt", "last"])
def test_lora_heals_merges_and_exports(name, corpus, tmp_path):
    model, tok = tiny_model("llama", n_layers=6)
    pruner = methods.create(name, FAST)
    assert pruner.trains and pruner.lora.lora_r == 8 and pruner.lora.lora_alpha == 16
    calib = Calibration(CalibSpec(source=corpus, n_samples=4, seq_len=16), model, tok)
    data = TrainData(TrainDataSpec(source=corpus), tok)
    plain = prune(model, methods.create(name), Budget(layers=2), calib, heal_data=None).model
    result = prune(model, pruner, Budget(layers=2), calib, heal_data=data)
    healed, plan = result.model, result.plan
    assert not [n for n, _ in healed.named_modules() if "lora" in n]  # merged: stock modules only
    assert type(healed) is type(model)
    changed = {k for k, v in healed.state_dict().items() if not torch.equal(v, plain.state_dict()[k])}
    targets = set(target_modules(plain))
    assert changed and {k.rsplit(".", 1)[0] for k in changed} <= targets  # only the adapted linear maps moved
    cost = plan.cost["training"]
    assert cost["method"] == "lora" and cost["steps"] == 4 and cost["tokens"] == 16 * 16
    assert cost["loss_last"] < cost["loss_first"] and cost["wall_seconds"] > 0 and cost["flops"] > 0
    assert plan.params["heal"] == "lora" and plan.params["lora_r"] == 8
    assert any("LoRA" in note for note in plan.notes)
    again = methods.create(name, plan.params)  # the recorded parameters rebuild the same pruner
    assert again.params_dict() == plan.params
    _roundtrip(healed, tok, plan, tmp_path)


@pytest.mark.parametrize("fam", FAMILIES)
def test_lora_heals_every_family(fam, corpus, tmp_path):
    model, tok = tiny_model(fam, n_layers=6)
    dense = copy.deepcopy(model)
    pruner = methods.create("random", {**FAST, "lora_samples": 4})
    result = prune(model, pruner, Budget(layers=2), None, heal_data=TrainData(TrainDataSpec(source=corpus), tok))
    assert result.plan.cost["training"]["steps"] == 1
    for (k, v), (_, w) in zip(model.state_dict().items(), dense.state_dict().items()):
        assert torch.equal(v, w), k  # the dense model is left alone
    _roundtrip(result.model, tok, result.plan, tmp_path)


def test_lora_parameters_and_errors():
    with pytest.raises(ConfigError, match="without heal=lora"):
        methods.create("shortgpt", {"lora_r": "4"})
    with pytest.raises(UnknownNameError):
        methods.create("shortgpt", {"heal": "true"})  # shortgpt has no healing of its own
    assert methods.create("shortgpt", {"heal": "none"}).lora is None
    assert methods.create("last", {"heal": "true"}).params.heal is True  # last's own partial fine-tuning
    last_lora = methods.create("last", {"heal": "lora", "lora_r": "4"})
    assert last_lora.params.heal is False and last_lora.lora.lora_r == 4 and last_lora.trains
    assert "heal" not in methods.create("shortgpt").params_dict()  # no healing: the parameters are unchanged
    assert may_train("shortgpt", {"heal": "lora"}) and not may_train("shortgpt", {})


def test_lora_needs_training_data():
    model, _ = tiny_model("llama", n_layers=4)
    with pytest.raises(ConfigError, match="training data"):
        prune(model, methods.create("last", {"heal": "lora"}), Budget(layers=1), None, heal_data=None)
