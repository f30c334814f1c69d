"""Pruners on tiny models, where the right answer is known by construction."""

import json

import pytest
import torch
from tiny import FAMILIES, tiny_model
from transformers import AutoModelForCausalLM

import methods
from bench.core.errors import BudgetError, ConfigError, SurgeryError, UnknownNameError
from bench.data.calibration import Calibration, CalibSpec
from bench.models import arch
from bench.models.export import save_pruned
from methods.base import Budget, PrunePlan
from methods.selection import angular
from methods.surgery import merge_rule

TEXT = "\n\n".join(
    f"Document {i}: the tower stands in Paris and was built by Gustave Eiffel for the fair of {1800 + i}. "
    "Layer pruning removes whole transformer layers from a language model." for i in range(40))


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "calib.txt"
    path.write_text(TEXT)
    return str(path)


def _calib(model, tok, corpus, n=8):
    return Calibration(CalibSpec(source=corpus, n_samples=n, seq_len=16, batch_size=4), model, tok)


def _identity_layers(model, layers=(2, 3)):
    """Zero the attention output and MLP down projections: those layers map h to h exactly."""
    for i in layers:
        layer = arch.decoder_layers(model)[i]
        with torch.no_grad():
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()


@pytest.mark.parametrize("name,params", [("shortgpt", {}), ("streamline", {"replacement": "none"}), ("angular", {})])
def test_similarity_methods_find_identity_layers(name, params, corpus):
    model, tok = tiny_model("llama", n_layers=6)
    _identity_layers(model)
    plan = methods.create(name, params).plan(model, _calib(model, tok, corpus), Budget(layers=2))
    assert plan.removed_original == [2, 3]


def test_streamline_trained_window_spans_the_identity_layers(corpus):
    """The default `layer` replacement scores k+1-layer windows: the chosen one holds both identity layers."""
    model, tok = tiny_model("llama", n_layers=6)
    _identity_layers(model)
    plan = methods.create("streamline").plan(model, _calib(model, tok, corpus), Budget(layers=2))
    (op,) = plan.ops
    assert op["op"] == "replace" and op["stop"] - op["start"] == 3
    assert {2, 3} <= set(range(op["start"], op["stop"]))
    assert plan.layers_removed == 2


def test_one_capture_serves_every_scorer(corpus):
    model, tok = tiny_model("llama", n_layers=6)
    calib = _calib(model, tok, corpus)
    for name in ("shortgpt", "streamline", "angular"):
        methods.create(name).plan(model, calib, Budget(layers=2))
    stats = calib.stats
    assert stats.n_tokens == 8 * 16 and stats.n_sequences == 8
    # (h_0 of the EOS separator is the zero padding embedding in these tiny models, hence from 1)
    assert torch.allclose(torch.diagonal(stats.cos_tokens)[1:], torch.ones(6), atol=1e-5)
    # the captured raw boundaries equal HF's hidden states (except the post-norm last one)
    with torch.no_grad():
        hs = model(calib.windows, output_hidden_states=True).hidden_states
    cos01 = torch.nn.functional.cosine_similarity(hs[0].float(), hs[1].float(), dim=-1).mean()
    assert float(stats.cos_tokens[0, 1]) == pytest.approx(float(cos01), abs=1e-5)


def test_final_norm_boundary_matches_hf(corpus):
    model, tok = tiny_model("llama", n_layers=4)
    calib = Calibration(CalibSpec(source=corpus, n_samples=4, seq_len=16, last_boundary="final_norm"), model, tok)
    with torch.no_grad():
        hs = model(calib.windows, output_hidden_states=True).hidden_states
    expected = torch.nn.functional.cosine_similarity(hs[3].float(), hs[4].float(), dim=-1).mean()
    assert float(calib.stats.cos_tokens[3, 4]) == pytest.approx(float(expected), abs=1e-5)


def test_last_and_random():
    model, _ = tiny_model("llama", n_layers=6)
    assert methods.create("last").plan(model, None, Budget(layers=2)).removed_original == [4, 5]
    assert methods.create("last", {"keep_last": "true"}).plan(model, None, Budget(layers=2)).removed_original == [3, 4]
    a = methods.create("random", {"seed": 3}).plan(model, None, Budget(layers=3))
    b = methods.create("random", {"seed": 3}).plan(model, None, Budget(layers=3))
    assert a.removed_original == b.removed_original and len(a.removed_original) == 3


def test_same_seed_same_plan(corpus):
    model, tok = tiny_model("qwen2", n_layers=6)
    plans = [methods.create("shortgpt").plan(model, _calib(model, tok, corpus), Budget(layers=2)) for _ in range(2)]
    assert plans[0].ops == plans[1].ops and plans[0].scores == plans[1].scores


def test_merge_rules_by_hand():
    base, o1, o2 = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 5.0]), torch.tensor([0.0, 1.0])
    paper = merge_rule("paper", {"w"})("w", base.clone(), [o1, o2])
    torch.testing.assert_close(paper, torch.tensor([1.0 + 2.0 - 1.0, 2.0 + 3.0 - 1.0]))  # base + sum(o - base)
    official = merge_rule("official", {"w"})("w", base.clone(), [o1, o2])
    torch.testing.assert_close(official, o2)  # the notebook's in-place update ends as the last layer
    norm = merge_rule("paper", {"w"})("norm", base.clone(), [o1, o2])
    torch.testing.assert_close(norm, base)  # norms are kept from the base layer


@pytest.mark.parametrize("rule", ["paper", "official"])
def test_laco_meets_budget_and_replays(rule, corpus):
    model, tok = tiny_model("llama", n_layers=8)
    pruner = methods.create("laco", {"merge": rule, "layers_per_merge": 3, "threshold": 0.99})
    plan = pruner.plan(model, _calib(model, tok, corpus), Budget(layers=3))
    assert plan.layers_removed == 3 and arch.num_layers(model) == 8  # planning leaves the model alone
    assert all(op["op"] == "merge" for op in plan.ops)
    pruner.apply(model, plan)
    assert arch.num_layers(model) == 5 and model.config.num_hidden_layers == 5


def test_plan_json_round_trip(corpus):
    model, tok = tiny_model("llama", n_layers=6)
    plan = methods.create("streamline").plan(model, _calib(model, tok, corpus), Budget(ratio=0.3))
    again = PrunePlan.from_json(plan.to_json())
    assert again.to_dict() == json.loads(plan.to_json())
    assert again.structure_hash() == plan.structure_hash()
    assert 0 < plan.param_ratio < 1


def test_budget_conversion_and_errors():
    model, _ = tiny_model("llama", n_layers=6)
    per_layer, total = arch.layer_parameter_counts(model), arch.count_parameters(model)
    k = Budget(ratio=0.25).to_layers(per_layer, total)
    assert k == round(0.25 * total / per_layer[0])
    with pytest.raises(BudgetError, match="leaves no layer"):
        Budget(layers=6).to_layers(per_layer, total)
    with pytest.raises(BudgetError):
        Budget(ratio=1.5)
    with pytest.raises(BudgetError):
        Budget(layers=2, ratio=0.1)
    with pytest.raises(BudgetError, match="leaves no layer"):
        methods.create("shortgpt").plan(model, None, Budget(layers=10))


def test_registry_and_params_errors():
    with pytest.raises(UnknownNameError, match="did you mean shortgpt"):
        methods.create("shortgtp")
    with pytest.raises(UnknownNameError, match="parameter"):
        methods.create("laco", {"treshold": "0.5"})
    with pytest.raises(ConfigError, match="expects float"):
        methods.create("laco", {"threshold": "high"})
    with pytest.raises(ConfigError, match="one of"):
        methods.create("laco", {"merge": "magic"})
    for name in methods.list_methods():  # what the registry read from the source is what the class says
        cls, info = methods.get_class(name), methods.info(name)
        assert (cls.name, cls.title, cls.paper, cls.needs_calibration, cls.may_train) == \
            (name, info.title, info.paper, info.needs_calibration, info.may_train)


# on six layers: LaCo merges pairs; the "+" rule of PPL and Taylor+ keeps one block at each end (not 4 and 2)
TINY_PARAMS = {"laco": {"layers_per_merge": 2, "threshold": 0.0}, "ppl": {"keep_first": 1, "keep_last": 1},
               "taylor": {"keep_first": 1, "keep_last": 1}}


@pytest.mark.parametrize("fam", FAMILIES)
@pytest.mark.parametrize("name", methods.list_methods())
def test_every_method_prunes_every_family_and_exports(fam, name, corpus, tmp_path):
    model, tok = tiny_model(fam, n_layers=6)
    pruner = methods.create(name, TINY_PARAMS.get(name))
    calib = _calib(model, tok, corpus, n=4) if pruner.needs_calibration else None
    plan = pruner.plan(model, calib, Budget(layers=2))
    pruner.apply(model, plan)
    units = plan.units()  # sub-layer methods keep the layers whose attention or MLP alone they drop
    assert arch.num_layers(model) == (6 - plan.layers_removed if units["attn"] or units["mlp"] else 4)
    out = save_pruned(model, tok, plan, tmp_path / "out", base_model="tiny")
    reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    ids = tok(["The tower"], return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, model(ids).logits)
    assert json.loads((out / "plan.json").read_text())["method"] == name
    assert "base_model: tiny" in (out / "README.md").read_text()


def test_plan_ops_are_typed_and_round_trip():
    from methods import ops

    typed = [ops.Remove([1, 2]), ops.Merge(base=3, others=[4], rule="paper"), ops.Replace(0, 2, "m")]
    as_json = [ops.to_dict(op) for op in typed]
    assert as_json[0] == {"op": "remove", "layers": [1, 2]}
    assert [ops.parse(d) for d in as_json] == typed
    with pytest.raises(SurgeryError, match="unknown plan operation 'fold'"):
        ops.parse({"op": "fold"})
    with pytest.raises(SurgeryError, match="expected"):
        ops.parse({"op": "remove", "layer": [1]})


def test_angular_averages_per_sample_distances_as_pruneme(corpus):
    """angle_last is PruneMe's statistic: arccos(cos)/pi per sequence at its last token, then the mean."""
    model, tok = tiny_model("llama", n_layers=6)
    calib = _calib(model, tok, corpus)
    with torch.no_grad():
        hs = model(calib.windows, output_hidden_states=True).hidden_states
    cos = torch.nn.functional.cosine_similarity(hs[1][:, -1].float(), hs[4][:, -1].float(), dim=-1)
    hand = (torch.arccos(cos.clamp(-1, 1)) / torch.pi).mean()
    assert float(calib.stats.angle_last[1, 4]) == pytest.approx(float(hand), abs=1e-5)


def test_angular_averaging_option_changes_the_statistic():
    """A hand-built case where the per-sample mean and the arccos of the mean cosine pick different blocks."""
    from bench.data.calibration import BoundaryStats

    n = 3  # boundaries 0..3; windows of 1 layer: (0,1), (1,2), (2,3)
    cos_last = torch.eye(n + 1)
    angle_last = torch.ones(n + 1, n + 1)
    # window (0,1): samples at cos 1 and -1 -> mean cos 0 (arccos/pi 0.5), per-sample mean distance 0.5
    # window (1,2): samples at cos 0.2, 0.2 -> 0.436 both ways
    # window (2,3): samples at cos 1 and 0 -> mean cos 0.5 (0.333), per-sample mean (0 + 0.5) / 2 = 0.25
    cos_last[0, 1], angle_last[0, 1] = 0.0, 0.5
    cos_last[1, 2], angle_last[1, 2] = 0.2, angular(0.2)
    cos_last[2, 3], angle_last[2, 3] = 0.5, 0.25
    cos_last[1, 2] = 0.6  # make the mean-cosine rule prefer window (1,2): arccos(0.6)/pi = 0.295 < 0.333
    stats = BoundaryStats(torch.eye(n + 1), cos_last, angle_last, 8, 2, "raw", 0.0)

    class Calib:
        spec = CalibSpec()

    calib = Calib()
    calib.stats = stats
    model, _ = tiny_model("llama", n_layers=n)
    per_sample = methods.create("angular").plan(model, calib, Budget(layers=1))
    mean_cos = methods.create("angular", {"averaging": "mean_cosine"}).plan(model, calib, Budget(layers=1))
    assert per_sample.removed_original == [2] and mean_cos.removed_original == [1]
    with pytest.raises(ConfigError):
        methods.create("angular", {"averaging": "median"})


def test_angular_min_start_is_prunemes_rule():
    """PruneMe drops the embedding output, so no block starts at layer 0 (`min_start=1`); hand-built statistics
    where that matters. ReplaceMe's `averaging` is checked against the official code in test_official_parity."""
    from bench.data.calibration import BoundaryStats

    n = 3
    cos_last = torch.full((n + 1, n + 1), 0.5)
    angle_last = torch.full((n + 1, n + 1), 0.4)
    cos_last[0, 1], angle_last[0, 1] = 0.99, 0.05  # block 0 is the closest by both rules
    cos_last[1, 2], angle_last[1, 2] = 0.6, 0.3  # mean cosine prefers block 1 among starts >= 1 ...
    cos_last[2, 3], angle_last[2, 3] = 0.55, 0.2  # ... the per-sample distance block 2
    stats = BoundaryStats(torch.eye(n + 1), cos_last, angle_last, 8, 2, "raw", 0.0)

    class Calib:
        spec = CalibSpec()

    calib = Calib()
    calib.stats = stats
    model, _ = tiny_model("llama", n_layers=n)
    assert methods.create("angular").plan(model, calib, Budget(layers=1)).removed_original == [0]
    assert methods.create("angular", {"min_start": 1}).plan(model, calib, Budget(layers=1)).removed_original == [2]
    with pytest.raises(BudgetError):
        methods.create("angular", {"min_start": 3}).plan(model, calib, Budget(layers=1))
    with pytest.raises(ConfigError):
        methods.create("angular", {"min_start": -1})
    with pytest.raises(ConfigError):
        methods.create("replaceme", {"averaging": "median"})
