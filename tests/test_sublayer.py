"""Sub-layer surgery (bench.models.sublayer) and sub-layer plans on tiny random models of every family."""

import copy
import json

import pytest
import torch
from tiny import FAMILIES, tiny_model
from transformers import AutoModelForCausalLM
from transformers.cache_utils import DummyLayer

from bench.core.errors import SurgeryError
from bench.models import arch, sublayer
from methods import ops
from methods.base import Budget, PrunePlan
from methods.surgery import apply_ops

pytestmark = pytest.mark.usefixtures("one_thread")

ATTN, MLP = [0, 2], [1, 2]  # layer 2 loses both: removed as a whole block


def _ids(n=20, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 500, (batch, n), generator=g)


def _zeroed_reference(dense, attn, mlp):
    """The reference computation: the stock dense model with every parameter of the dropped sublayers set
    to zero (a zero sublayer adds exactly nothing to the residual), built without bench.models.sublayer's stubs."""
    ref = copy.deepcopy(dense)
    rec = sublayer.sublayers(ref)
    layers = arch.decoder_layers(ref)
    with torch.no_grad():
        for kind, idx in (("attn", attn), ("mlp", mlp)):
            for i in idx:
                for path in rec.modules(kind):
                    for p in layers[i].get_submodule(path).parameters():
                        p.zero_()
    return ref


@pytest.mark.parametrize("fam", FAMILIES)
def test_dropped_sublayers_compute_the_reference_logits_and_less(fam, tmp_path):
    dense, _ = tiny_model(fam, n_layers=4)
    model = copy.deepcopy(dense)
    ids = _ids()
    ref = _zeroed_reference(dense, ATTN, MLP)
    sublayer.drop_sublayers(model, attn=ATTN, mlp=MLP)
    assert arch.num_layers(model) == 3 and model.config.num_hidden_layers == 3
    assert sublayer.dropped(model) == {"attn": [0], "mlp": [1]}
    with torch.no_grad():
        assert torch.equal(model(ids).logits, ref(ids).logits)
    # the layer really computes less: the dropped path's weights are gone
    units = sublayer.unit_parameters(dense)
    layer_params = arch.layer_parameter_counts(dense)
    assert arch.count_parameters(dense) - arch.count_parameters(model) == \
        units["attn"][0] + units["mlp"][1] + layer_params[2]
    # the exported checkpoint is stock: it reloads without remote code and gives the same logits
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, model(ids).logits)


@pytest.mark.parametrize("fam", FAMILIES)
def test_dropped_attention_allocates_no_kv_cache_and_decodes_like_a_full_forward(fam):
    model, _ = tiny_model(fam, n_layers=4)
    sublayer.drop_sublayers(model, attn=[0, 1], mlp=[])  # the first layer too: cache layer 0 must still exist
    assert sublayer.kv_cache_layers(model) == 2
    ids = _ids(n=24, batch=1)  # longer than the tiny sliding windows (16)
    with torch.no_grad():
        out = model(ids, use_cache=True)
        cache = out.past_key_values
        stored = [layer for layer in cache.layers if not isinstance(layer, DummyLayer) and layer.keys is not None
                  and layer.keys.numel() > 0]
        assert len(stored) == 2
        assert cache.get_seq_length() == ids.shape[1]
        gen = model.generate(ids, max_new_tokens=6, min_new_tokens=6, do_sample=False, pad_token_id=0,
                             output_logits=True, return_dict_in_generate=True)
        full = model(gen.sequences).logits[0, ids.shape[1] - 1:-1]
    assert torch.allclose(torch.stack(gen.logits)[:, 0], full, atol=1e-4)


def test_llama_matches_a_hand_written_forward():
    """Independent of the stubs and of zeroed weights: the decoder loop written out for Llama."""
    model, _ = tiny_model("llama", n_layers=4)
    ids = _ids(n=10, batch=1)
    layers = arch.decoder_layers(model)
    with torch.no_grad():
        h = model.model.embed_tokens(ids)
        pos = torch.arange(ids.shape[1])[None]
        cos_sin = model.model.rotary_emb(h, pos)
        mask = torch.full((ids.shape[1], ids.shape[1]), float("-inf")).triu(1)[None, None]
        for i, layer in enumerate(layers):
            if i not in (1, 3):
                h = h + layer.self_attn(layer.input_layernorm(h), position_embeddings=cos_sin, attention_mask=mask)[0]
            if i != 0:
                h = h + layer.mlp(layer.post_attention_layernorm(h))
        want = model.lm_head(model.model.norm(h))
        sublayer.drop_sublayers(model, attn=[1, 3], mlp=[0])
        got = model(ids).logits
    assert torch.allclose(got, want, atol=1e-5)


def test_generic_fallback_drops_sublayers():
    dense, _ = tiny_model("llama", n_layers=4)
    model = copy.deepcopy(dense)
    model.config.model_type = "somethingnew"
    sublayer.drop_sublayers(model, attn=[1], mlp=[3])
    ref = _zeroed_reference(dense, [1], [3])
    ids = _ids()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, ref(ids).logits)


def test_trial_skip_restores_the_model():
    model, _ = tiny_model("qwen3", n_layers=4)
    ids = _ids()
    with torch.no_grad():
        before = model(ids).logits
        with sublayer.skipped(model, [("attn", 1), ("mlp", 1), ("mlp", 2)]):
            during = model(ids).logits
        after = model(ids).logits
    assert torch.equal(before, after) and not torch.equal(before, during)
    assert sublayer.dropped(model) == {"attn": [], "mlp": []}


@pytest.mark.parametrize("attn, mlp, match", [([4], [], "out of range"), ([1, 1], [], "duplicate")])
def test_bad_sublayer_indices_raise(attn, mlp, match):
    model, _ = tiny_model("llama", n_layers=4)
    with pytest.raises(SurgeryError, match=match):
        sublayer.drop_sublayers(model, attn=attn, mlp=mlp)


# ------------------------------------------------------------------------------------------------- plans


def test_sublayer_plan_round_trips_and_replays():
    from methods.base import Pruner

    class Toy(Pruner):
        name, title, paper = "toy-sublayer", "toy", ""

        def plan(self, model, calib, budget):
            return self.sublayer_plan(model, budget, ATTN, MLP, {"why": "test"})

    dense, _ = tiny_model("gemma3", n_layers=4)
    plan = Toy().plan(dense, None, Budget(ratio=0.2))
    again = PrunePlan.from_json(plan.to_json())
    assert again == plan
    assert again.units() == {"attn": [0], "mlp": [1], "blocks": [2]}
    assert again.removed_original == [2] and again.layers_removed == 1
    model = apply_ops(copy.deepcopy(dense), again.ops)
    assert arch.count_parameters(dense) - arch.count_parameters(model) == again.params_removed
    with torch.no_grad():
        assert torch.equal(model(_ids()).logits, _zeroed_reference(dense, ATTN, MLP)(_ids()).logits)


def test_whole_layer_plans_load_and_replay_unchanged():
    """A plan written before sub-layer ops existed (one remove op) still loads and replays."""
    old = {"method": "shortgpt", "n_layers": 4, "ops": [{"op": "remove", "layers": [1, 2]}],
           "removed_original": [1, 2], "budget": {"layers": 2, "ratio": None}, "layers_removed": 2,
           "params_total": 1, "params_removed": 1, "param_ratio": 1.0}
    plan = PrunePlan.from_json(json.dumps(old))
    assert plan.units() == {"attn": [], "mlp": [], "blocks": [1, 2]}
    model, _ = tiny_model("llama", n_layers=4)
    apply_ops(model, plan.ops)
    assert arch.num_layers(model) == 2
    assert ops.parse({"op": "drop_sublayers", "attn": [1], "mlp": []}) == ops.DropSublayers([1], [])
    with pytest.raises(SurgeryError, match="keys"):
        ops.parse({"op": "drop_sublayers", "attn": [1]})


def test_budget_converts_to_units_the_same_way_for_every_order():
    # nearest cumulative parameter count to the target; a tie stops; at least one unit
    assert Budget.prefix_length([10, 10, 10], 14) == 1
    assert Budget.prefix_length([10, 10, 10], 16) == 2
    assert Budget.prefix_length([10, 10, 10], 15) == 1
    assert Budget.prefix_length([10, 30, 10], 30) == 2
    assert Budget.prefix_length([10, 30, 10], 1) == 1
    assert Budget(layers=2).target_parameters([4, 6], 100) == 10
    assert Budget(ratio=0.25).target_parameters([4, 6], 100) == 25


def test_save_pruned_writes_an_exact_stock_checkpoint_and_says_it_is_not_faster(tmp_path):
    from bench.models.export import save_pruned
    from methods.base import Pruner

    class Toy(Pruner):
        name, title, paper = "toy-sublayer", "toy", ""

        def plan(self, model, calib, budget):
            return self.sublayer_plan(model, budget, [0, 3], [1, 3], {})

    dense, tok = tiny_model("qwen2", n_layers=4)
    plan = Toy().plan(dense, None, Budget(layers=1))
    model = apply_ops(copy.deepcopy(dense), plan.ops)
    out = save_pruned(model, tok, plan, tmp_path / "out", base_model="tiny-qwen2")
    reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    assert arch.num_layers(reloaded) == 3
    with torch.no_grad():
        assert torch.equal(reloaded(_ids()).logits, model(_ids()).logits)
    card = (out / "README.md").read_text()
    assert "exact but not faster" in card and "MLP sublayers dropped alone: 1" in card


def test_a_model_without_any_attention_still_generates_like_its_full_forward():
    model, _ = tiny_model("gemma3", n_layers=4)
    sublayer.drop_sublayers(model, attn=[0, 1, 2, 3], mlp=[])
    assert sublayer.kv_cache_layers(model) == 0
    ids = _ids(n=8, batch=1)
    with torch.no_grad():
        gen = model.generate(ids, max_new_tokens=4, min_new_tokens=4, do_sample=False, pad_token_id=0,
                             output_logits=True, return_dict_in_generate=True)
        full = model(gen.sequences).logits[0, ids.shape[1] - 1:-1]
    assert torch.allclose(torch.stack(gen.logits)[:, 0], full, atol=1e-4)
