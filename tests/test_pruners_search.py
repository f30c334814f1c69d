"""SLEB, Shortened-LLaMA PPL and Taylor+, ReplaceMe: each selection rule checked by hand on tiny models."""

import copy
import math

import pytest
import torch
from tiny import tiny_model

import methods
from bench.core.errors import BudgetError
from bench.data.calibration import Calibration, CalibSpec
from bench.models import arch
from methods.base import Budget
from methods.bypass import bypass_losses
from methods.taylor import taylor_scores

TEXT = "\n\n".join(
    f"Document {i}: the tower stands in Paris and was built by Gustave Eiffel for the fair of {1800 + i}. "
    "Layer pruning removes whole transformer layers from a language model." for i in range(60))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("calib") / "calib.txt"
    path.write_text(TEXT)
    return str(path)


def _calib(model, tok, corpus, n=8, seq_len=16):
    return Calibration(CalibSpec(source=corpus, n_samples=n, seq_len=seq_len, batch_size=4), model, tok)


def _scale_residual_writes(model, scales: dict[int, float]):
    """Multiply each listed layer's attention output and MLP output by a fixed factor (forward hooks, kept by
    deep copies): 0 makes the layer the identity, a small factor a layer that matters little."""
    for i, factor in scales.items():
        layer = arch.decoder_layers(model)[i]
        for module in (layer.self_attn.o_proj, layer.mlp.down_proj):
            module.register_forward_hook(lambda _m, _a, out, f=factor: out * f)


def _fit(model, calib, steps=60):
    """Train the tiny model on its calibration windows so that its layers matter."""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    for _ in range(steps):
        for ids, _mask in calib.batches():
            opt.zero_grad()
            model(input_ids=ids, labels=ids).loss.backward()
            opt.step()
    model.zero_grad(set_to_none=True)


def _nll_without(model, calib, removed) -> float:
    """Calibration mean NLL of a deep copy with `removed` deleted (by hand: surgery, then the model's loss)."""
    m = copy.deepcopy(model)
    arch.remove_layers(m, removed)
    total = count = 0
    with torch.no_grad():
        for ids, mask in calib.batches():
            logits = m(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            total += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                            ids[:, 1:].reshape(-1), reduction="sum"))
            count += ids[:, 1:].numel()
    return total / count


# ------------------------------------------------------------------------------------------------- reuse


@pytest.mark.parametrize("fam", ["llama", "gemma3", "gpt2"])
def test_prefix_reuse_gives_the_same_losses_as_full_forwards(fam, corpus):
    model, tok = tiny_model(fam, n_layers=6)
    calib = _calib(model, tok, corpus)
    with_reuse = bypass_losses(model, calib.batches(), [2], [0, 1, 3, 4], reuse=True)
    without = bypass_losses(model, calib.batches(), [2], [0, 1, 3, 4], reuse=False)
    assert with_reuse == without  # bitwise: the suffix starts from the very same prefix state
    # and both equal deleting the layers by surgery
    for c in (0, 3):
        assert with_reuse[0][c] / with_reuse[1] == pytest.approx(_nll_without(model, calib, [2, c]), rel=1e-5)
    assert all(layer.__dict__.get("forward") is None for layer in arch.decoder_layers(model))  # restored


# -------------------------------------------------------------------------------------------------- SLEB


def test_sleb_removes_greedily_in_order_of_unequal_importance(corpus):
    model, tok = tiny_model("llama", n_layers=8)
    # residual writes scaled (layer 0 becomes the identity but sits behind the barrier; 5, 2 and 6 matter
    # least, in that order), then trained on the calibration text so that removing a layer costs
    _scale_residual_writes(model, {0: 0.0, 5: 0.0, 2: 0.02, 6: 0.1})
    calib = _calib(model, tok, corpus)
    _fit(model, calib)
    plan = methods.create("sleb").plan(model, calib, Budget(layers=3))
    order = plan.scores["order"]
    assert order == [5, 2, 6] and plan.removed_original == [2, 5, 6]
    # by hand: each round, delete every candidate with the earlier removals and take the argmin
    removed = []
    for _ in range(3):
        alive = [i for i in range(8) if i not in removed]
        losses = {c: _nll_without(model, calib, removed + [c]) for c in alive[1:-1]}
        removed.append(min(losses, key=losses.get))
    assert removed == order
    for rnd, got in zip(plan.scores["rounds"], order):
        assert min(rnd["mean_nll"], key=rnd["mean_nll"].get) == str(got)
    assert "0" not in plan.scores["rounds"][0]["mean_nll"] and "7" not in plan.scores["rounds"][0]["mean_nll"]


def test_sleb_with_and_without_reuse_plan_alike(corpus):
    model, tok = tiny_model("qwen2", n_layers=6)
    calib = _calib(model, tok, corpus, n=4)
    a = methods.create("sleb").plan(model, calib, Budget(layers=2))
    b = methods.create("sleb", {"reuse": "false"}).plan(model, calib, Budget(layers=2))
    assert a.scores == b.scores and a.ops == b.ops


def test_sleb_barriers_bound_the_budget(corpus):
    model, tok = tiny_model("llama", n_layers=4)
    with pytest.raises(BudgetError, match="no candidate left"):
        methods.create("sleb", {"early_barrier": 2}).plan(model, _calib(model, tok, corpus, n=4), Budget(layers=2))


# --------------------------------------------------------------------------------------------------- PPL


def test_ppl_scores_each_single_removal_and_prunes_in_ascending_order(corpus):
    model, tok = tiny_model("llama", n_layers=8)
    _scale_residual_writes(model, {1: 0.0, 4: 0.05, 6: 0.2})
    calib = _calib(model, tok, corpus)
    _fit(model, calib)
    plan = methods.create("ppl", {"keep_first": 0, "keep_last": 0}).plan(model, calib, Budget(layers=3))
    by_hand = [math.exp(_nll_without(model, calib, [i])) for i in range(8)]
    assert plan.scores["perplexity_without_block"] == pytest.approx(by_hand, rel=1e-5)
    assert plan.scores["order"] == sorted(range(8), key=lambda i: by_hand[i])[:3] == [1, 4, 6]
    # the "+" rule (official defaults 4 and 2) keeps blocks 0-3 and 6-7: the next cheapest outside them
    plus = methods.create("ppl").plan(model, calib, Budget(layers=2))
    assert plus.scores["order"] == sorted([4, 5], key=lambda i: by_hand[i]) == [4, 5]
    assert plus.params["keep_first"] == 4 and plus.params["keep_last"] == 2


# ------------------------------------------------------------------------------------------------ Taylor


def test_taylor_score_matches_autograd_by_hand(corpus):
    model, tok = tiny_model("llama", n_layers=4)
    calib = _calib(model, tok, corpus)
    got, _ = taylor_scores(model, calib.batches())
    layers = arch.decoder_layers(model)
    weights = [[p for n, p in layer.named_parameters() if n.endswith("weight")] for layer in layers]
    flat = [w for ws in weights for w in ws]
    summed = [torch.zeros_like(w) for w in flat]
    for ids, _mask in calib.batches():
        logits = model(input_ids=ids).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        for acc, g in zip(summed, torch.autograd.grad(loss, flat)):
            acc += g  # gradients summed over batches before |W * G|
    expected, i = [], 0
    for ws in weights:
        ws = [w.detach() for w in ws]
        expected.append(sum(float((w * summed[i + j]).abs().sum()) for j, w in enumerate(ws)))
        i += len(ws)
    assert got == pytest.approx(expected, rel=1e-4)
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())  # flags restored


def test_taylor_prunes_the_least_salient_blocks_outside_the_plus_ends(corpus):
    model, tok = tiny_model("llama", n_layers=8)
    calib = _calib(model, tok, corpus)
    plan = methods.create("taylor").plan(model, calib, Budget(layers=2))
    scores = plan.scores["taylor"]
    assert plan.scores["order"] == sorted([4, 5], key=lambda i: scores[i])
    free = methods.create("taylor", {"keep_first": 0, "keep_last": 0}).plan(model, calib, Budget(layers=2))
    assert free.scores["order"] == sorted(range(8), key=lambda i: scores[i])[:2]


# --------------------------------------------------------------------------------------------- ReplaceMe


def _outputs(model, calib, named: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    """Every calibration token's output of each named module (forward hooks), as (tokens, d) fp64."""
    got = {k: [] for k in named}
    handles = [m.register_forward_hook(lambda _m, _a, out, k=k: got[k].append(arch.layer_output(out)))
               for k, m in named.items()]
    try:
        with torch.no_grad():
            for ids, _mask in calib.batches():
                model(input_ids=ids)
    finally:
        for h in handles:
            h.remove()
    return {k: torch.cat([x.reshape(-1, x.shape[-1]) for x in v]).double() for k, v in got.items()}


def test_replaceme_transform_is_the_closed_form_least_squares(corpus):
    model, tok = tiny_model("llama", n_layers=8)
    calib = _calib(model, tok, corpus, n=16)  # 256 tokens > hidden 64: a unique solution
    pruner = methods.create("replaceme")
    plan = pruner.plan(model, calib, Budget(layers=2))
    start = plan.scores["start"]
    assert start >= 1
    distance = plan.scores["angular_distance"]
    assert start == 1 + min(range(len(distance) - 1), key=lambda s: distance[s + 1])
    (fold, remove) = plan.ops
    t = pruner._transforms[fold["transform"]]
    layers = arch.decoder_layers(model)
    got = _outputs(model, calib, {"m": layers[start - 1].mlp.down_proj, "ys": layers[start - 1],
                                  "ye": layers[start + 1]})
    m, ys, ye = got["m"], got["ys"], got["ye"]
    closed = torch.linalg.lstsq(m, ye - ys + m).solution  # argmin_T ||M T - (Y_e - Y_s + M)||
    torch.testing.assert_close(t, closed, rtol=1e-6, atol=1e-8)
    ridge = methods.create("replaceme", {"alpha": "0.5"})
    t_ridge = ridge._transforms[ridge.plan(model, calib, Budget(layers=2)).ops[0]["transform"]]
    eye = torch.eye(m.shape[1], dtype=torch.float64)
    torch.testing.assert_close(t_ridge, torch.linalg.solve(m.T @ m + 0.5 * eye, m.T @ (ye - ys + m)))
    # the fold: the pruned layer start-1 now writes Y_s - M + M T
    pruned = copy.deepcopy(model)
    pruner.apply(pruned, plan)
    assert remove["layers"] == [start, start + 1] and arch.num_layers(pruned) == 6
    after = _outputs(pruned, calib, {"ys": arch.decoder_layers(pruned)[start - 1]})["ys"]
    torch.testing.assert_close(after, ys - m + m @ t, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("fam", ["llama", "gpt2", "gemma3", "opt"])
def test_replaceme_on_an_identity_block_keeps_the_function(fam, corpus):
    model, tok = tiny_model(fam, n_layers=6)
    zero = {"llama": ("self_attn.o_proj", "mlp.down_proj"), "gemma3": ("self_attn.o_proj", "mlp.down_proj"),
            "gpt2": ("attn.c_proj", "mlp.c_proj"), "opt": ("self_attn.out_proj", "fc2")}[fam]
    with torch.no_grad():
        for i in (3, 4):
            for path in zero:
                module = arch.decoder_layers(model)[i].get_submodule(path)
                module.weight.zero_()
                if getattr(module, "bias", None) is not None:
                    module.bias.zero_()
    pruner = methods.create("replaceme")
    plan = pruner.plan(model, _calib(model, tok, corpus, n=16), Budget(layers=2))
    assert plan.removed_original == [3, 4]
    assert plan.scores["lstsq_relative_residual"] < 1e-8
    pruned = copy.deepcopy(model)
    pruner.apply(pruned, plan)
    ids = tok(["The tower stands in Paris"], return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(pruned(ids).logits, model(ids).logits, rtol=1e-4, atol=1e-4)
    assert plan.ops[0]["diag"] == (fam == "gemma3")


def test_replaceme_says_when_the_calibration_is_too_small_for_t(corpus):
    model, tok = tiny_model("llama", n_layers=6)
    small = methods.create("replaceme").plan(model, _calib(model, tok, corpus, n=2), Budget(layers=2))
    assert any("poorly determined" in note for note in small.notes)  # 32 tokens for a 64 x 64 map
    big = methods.create("replaceme").plan(model, _calib(model, tok, corpus, n=32), Budget(layers=2))
    assert not any("poorly determined" in note for note in big.notes)
