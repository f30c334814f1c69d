"""LLM-Drop, BlockPruner and FinerCut on tiny random models: criteria, search rules, budgets, replay."""

import copy
import json

import pytest
import torch
from tiny import tiny_model

import methods
from bench.core.errors import BudgetError
from bench.data.calibration import Calibration, CalibSpec
from bench.models import arch, sublayer
from methods.base import Budget
from methods.surgery import apply_ops

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    model, tok = tiny_model("llama", n_layers=6)
    calib = Calibration(CalibSpec(source="wikipedia", n_samples=4, seq_len=32, batch_size=2), model, tok)
    return model, calib


def test_llm_drop_block_similarity_is_one_minus_block_influence(tiny):
    """The block criterion, from its own hooks, equals ShortGPT's BI read from bench.data.calibration's statistics."""
    from methods.llm_drop import similarities
    from methods.selection import block_influence

    model, calib = tiny
    sims = similarities(model, calib.batches())
    bi = block_influence(calib.stats.cos_tokens)
    for i in range(6):
        assert sims[("block", i)] == pytest.approx(1.0 - bi[i], abs=1e-5)


def test_llm_drop_sublayer_similarity_matches_a_direct_computation(tiny):
    """cos(x, x + attn(LN(x))) and cos(y, y + mlp(LN(y))), written out with the layer's own modules."""
    from methods.llm_drop import similarities

    model, calib = tiny
    sims = similarities(model, calib.batches())
    ids, _ = next(calib.batches())
    all_ids = torch.cat([b[0] for b in calib.batches()])
    want = {("attn", 2): [], ("mlp", 2): []}
    with torch.no_grad():
        for ids in all_ids.split(2):
            hidden = model(ids, output_hidden_states=True).hidden_states
            layer = arch.decoder_layers(model)[2]
            x = hidden[2]
            pos = torch.arange(ids.shape[1])[None]
            mask = torch.full((ids.shape[1], ids.shape[1]), float("-inf")).triu(1)[None, None]
            mid = x + layer.self_attn(layer.input_layernorm(x), attention_mask=mask,
                                      position_embeddings=model.model.rotary_emb(x, pos))[0]
            out = mid + layer.mlp(layer.post_attention_layernorm(mid))
            want[("attn", 2)].append(torch.nn.functional.cosine_similarity(x, mid, dim=-1).reshape(-1))
            want[("mlp", 2)].append(torch.nn.functional.cosine_similarity(mid, out, dim=-1).reshape(-1))
    for key, parts in want.items():
        assert sims[key] == pytest.approx(float(torch.cat(parts).mean()), abs=1e-5)


@pytest.mark.parametrize("mode", ["attn", "mlp", "block", "joint"])
def test_llm_drop_drops_the_most_similar_units_within_the_budget(tiny, mode):
    model, calib = tiny
    plan = methods.create("llm-drop", {"mode": mode}).plan(model, calib, Budget(ratio=0.1))
    sims = plan.scores["similarity"]
    dropped = plan.scores["dropped"]
    kept = [u for u in plan.scores["order"] if u not in dropped]
    assert min(sims[u] for u in dropped) >= max(sims[u] for u in kept)
    units = plan.units()
    if mode == "attn":
        assert units["mlp"] == [] and units["blocks"] == []
    if mode == "block":
        assert units["attn"] == units["mlp"] == [] and units["blocks"]
    target = 0.1 * plan.params_total
    # the budget rule: one unit more or one fewer would not be nearer the target
    assert abs(plan.params_removed - target) <= target


def test_attention_only_cannot_reach_a_large_budget(tiny):
    model, calib = tiny
    with pytest.raises(BudgetError, match="all 6 candidate units"):
        methods.create("llm-drop", {"mode": "attn"}).plan(model, calib, Budget(ratio=0.5))


@pytest.mark.parametrize("name", ["blockpruner", "finercut"])
def test_greedy_searches_give_the_same_scores_with_and_without_prefix_reuse(tiny, name):
    model, calib = tiny
    a = methods.create(name, {"reuse": True}).plan(model, calib, Budget(ratio=0.2))
    b = methods.create(name, {"reuse": False}).plan(model, calib, Budget(ratio=0.2))
    assert a.scores["order"] == b.scores["order"]
    for ra, rb in zip(a.scores["rounds"], b.scores["rounds"], strict=True):
        for unit, value in ra["scores"].items():
            assert value == pytest.approx(rb["scores"][unit], rel=1e-5)


def test_blockpruner_perplexity_is_the_models_own_loss(tiny):
    """With nothing else dropped, the round-1 score of a candidate is exp(loss) of the model without it."""
    model, calib = tiny
    plan = methods.create("blockpruner", {"ignore_pad": False}).plan(model, calib, Budget(ratio=0.05))
    first = plan.scores["rounds"][0]["scores"]
    ids = torch.cat([b[0] for b in calib.batches()])
    with torch.no_grad(), sublayer.skipped(model, [("mlp", 3)]):
        loss = model(ids, labels=ids).loss  # equal-length windows: per-sequence means average to the mean
    assert first["mlp3"] == pytest.approx(float(torch.exp(loss)), rel=1e-5)
    assert list(first)[:6] == [f"attn{i}" for i in range(6)]  # the official order: mha ids, then mlp ids


def test_finercut_holds_back_layer_zero_for_one_step_and_orders_targets_by_name(tiny):
    model, calib = tiny
    plan = methods.create("finercut").plan(model, calib, Budget(ratio=0.2))
    rounds = plan.scores["rounds"]
    assert "attn0" not in rounds[0]["scores"] and "mlp0" not in rounds[0]["scores"]
    assert list(rounds[0]["scores"])[:2] == ["mlp1", "attn1"]  # model.layers.1.mlp < model.layers.1.self_attn
    if len(rounds) > 1:
        assert "attn0" in rounds[1]["scores"]


def test_finercut_divergence_is_zero_for_the_dense_model_and_official_js_differs_from_textbook():
    from methods.finercut import Divergence

    torch.manual_seed(0)
    p = torch.log_softmax(torch.randn(1, 3, 7), -1)
    q_logits = torch.randn(1, 3, 7)
    off, book = Divergence(lambda: [p], "js_official"), Divergence(lambda: [p], "js")
    for d in (off, book):
        d.reset([("attn", 0), ("attn", 1)])
        d.add(("attn", 0), 0, p.clone(), None, None)
        d.add(("attn", 1), 0, q_logits, None, None)
        assert d.value(("attn", 0)) == pytest.approx(0.0, abs=1e-7)
    q = torch.log_softmax(q_logits, -1)
    m = 0.5 * (p.exp() + q.exp())
    want = 0.5 * (torch.nn.functional.kl_div(p, m, reduction="mean") + torch.nn.functional.kl_div(q, m, reduction="mean"))
    assert off.value(("attn", 1)) == pytest.approx(float(want), rel=1e-5)
    assert book.value(("attn", 1)) != pytest.approx(off.value(("attn", 1)), rel=1e-3)


@pytest.mark.parametrize("name", ["llm-drop", "blockpruner", "finercut"])
def test_plans_replay_to_the_searched_model(tiny, name):
    model, calib = tiny
    plan = methods.create(name).plan(model, calib, Budget(ratio=0.15))
    pruned = apply_ops(copy.deepcopy(model), plan.ops)
    assert arch.count_parameters(model) - arch.count_parameters(pruned) == plan.params_removed
    attn, mlp = plan.units()["attn"], plan.units()["mlp"]
    units = [("attn", i) for i in attn] + [("mlp", i) for i in mlp]
    units += [(k, i) for i in plan.units()["blocks"] for k in ("attn", "mlp")]
    ids = next(calib.batches())[0]
    with torch.no_grad(), sublayer.skipped(model, units):
        want = model(ids).logits
    with torch.no_grad():
        assert torch.equal(pruned(ids).logits, want)


@pytest.mark.parametrize("name", ["blockpruner", "finercut"])
def test_a_larger_budget_replays_the_rounds_a_smaller_one_searched(name):
    """The runner plans ratio 0.15 then 0.3 of a method on the same calibration: the second search replays the
    first one's rounds (methods.sublayers.search_memo) and gives bit for bit the plan of a search from scratch;
    an in-place change to a weight starts a new memo."""
    model, tok = tiny_model("llama", n_layers=6)
    spec = CalibSpec(source="wikipedia", n_samples=4, seq_len=32, batch_size=2)
    shared = Calibration(spec, model, tok)
    small = methods.create(name).plan(model, shared, Budget(ratio=0.15))
    large = methods.create(name).plan(model, shared, Budget(ratio=0.3))
    scratch = methods.create(name).plan(model, Calibration(spec, model, tok), Budget(ratio=0.3))
    assert large.scores == scratch.scores and large.ops == scratch.ops
    assert len(large.scores["rounds"]) > len(small.scores["rounds"])
    assert large.cost["replayed_rounds"] >= len(small.scores["rounds"])
    assert large.cost["replayed_round_seconds"] > 0
    assert "replayed_rounds" not in small.cost and "replayed_rounds" not in scratch.cost
    other = methods.create(name, {"reuse": False}).plan(model, shared, Budget(ratio=0.3))
    assert "replayed_rounds" not in other.cost  # other parameters: another memo
    with torch.no_grad():
        arch.decoder_layers(model)[3].mlp.down_proj.weight.mul_(0.5)
    changed = methods.create(name).plan(model, shared, Budget(ratio=0.3))
    assert "replayed_rounds" not in changed.cost


def test_sleb_at_a_larger_budget_replays_the_smaller_budgets_rounds():
    model, tok = tiny_model("llama", n_layers=6)
    spec = CalibSpec(source="wikipedia", n_samples=4, seq_len=32, batch_size=2)
    shared = Calibration(spec, model, tok)
    small = methods.create("sleb").plan(model, shared, Budget(layers=1))
    large = methods.create("sleb").plan(model, shared, Budget(layers=3))
    scratch = methods.create("sleb").plan(model, Calibration(spec, model, tok), Budget(layers=3))
    assert large.scores == scratch.scores and large.ops == scratch.ops
    assert large.cost["replayed_rounds"] == len(small.scores["rounds"]) == 1
    assert "replayed_rounds" not in small.cost and "replayed_rounds" not in scratch.cost
    assert large.cost["pruning"]["tokens"] < scratch.cost["pruning"]["tokens"]


def test_a_stopped_search_resumes_from_its_saved_rounds(tmp_path, monkeypatch):
    """A greedy search whose windows have a memo folder saves every computed round (methods.memo); a new
    process (new model object and windows, the same weights and tokens) replays them and computes only the
    rest, with the plan of a search from scratch; a crash in round 2 leaves round 1 on disk."""
    import methods.sublayers as sub

    spec = CalibSpec(source="wikipedia", n_samples=4, seq_len=32, batch_size=2)

    def fresh():
        model, tok = tiny_model("llama", n_layers=6)
        calib = Calibration(spec, model, tok)
        calib.memo_dir = tmp_path / "searches"
        return model, calib

    model, calib = fresh()
    calls = {"n": 0}
    real = sub._round

    def crash_in_round_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the run is stopped in its second round
        return real(*args, **kwargs)

    monkeypatch.setattr(sub, "_round", crash_in_round_two)
    with pytest.raises(KeyboardInterrupt):
        methods.create("finercut").plan(model, calib, Budget(ratio=0.3))
    monkeypatch.setattr(sub, "_round", real)
    (saved,) = (tmp_path / "searches").glob("finercut-*.json")
    assert len(json.loads(saved.read_text())["rounds"]) == 1
    model, calib = fresh()
    resumed = methods.create("finercut").plan(model, calib, Budget(ratio=0.3))
    assert resumed.cost["replayed_rounds"] == 1
    model, calib = fresh()
    calib.memo_dir = None
    scratch = methods.create("finercut").plan(model, calib, Budget(ratio=0.3))
    assert resumed.scores == scratch.scores and resumed.ops == scratch.ops
    assert len(json.loads(saved.read_text())["rounds"]) >= len(scratch.scores["rounds"])
    other_model, tok = tiny_model("llama", n_layers=6, seed=1)  # other weights: another file
    other = Calibration(spec, other_model, tok)
    other.memo_dir = tmp_path / "searches"
    plan = methods.create("finercut").plan(other_model, other, Budget(ratio=0.3))
    assert "replayed_rounds" not in plan.cost
    assert len(list((tmp_path / "searches").glob("finercut-*.json"))) == 2
