"""LLM-Streamline replacements on tiny models: standalone layer calls, training, budgets, export round trips."""

import copy
import json

import pytest
import torch
from tiny import tiny_model
from transformers import AutoModelForCausalLM

import methods
from bench.core.errors import ConfigError, ExportError
from bench.data.calibration import Calibration, CalibSpec
from bench.data.training_text import TrainData, TrainDataSpec
from bench.models import arch
from bench.models.export import save_pruned
from bench.models.layercall import MLPBlock, capture
from bench.run.pipeline import prune
from bench.train import lm_loss
from methods.base import Budget

TEXT = "\n\n".join(
    f"Note {i}: the bridge over the river was finished in {1700 + i} after the flood of the previous spring, "
    f"and the town of {'ABCDEFGH'[i % 8]}ville held a fair with music, bread and {i % 7} horses." for i in range(120))
FAST = {"train_samples": 8, "train_seq_len": 16, "train_batch": 4, "lr": 1e-4}

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

# the attention output projection of each tiny family's decoder layer (what an exported MLP block zeroes)
ATTN_OUT = {"llama": "self_attn.o_proj", "qwen2": "self_attn.o_proj", "mistral": "self_attn.o_proj",
            "gemma2": "self_attn.o_proj", "gpt2": "attn.c_proj", "phi": "self_attn.dense",
            "gpt_neox": "attention.dense"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "train.txt"
    path.write_text(TEXT)
    return str(path)


def _prune(fam, corpus, replacement, objective="mse", n_layers=6, k=2, **extra):
    model, tok = tiny_model(fam, n_layers=n_layers)
    dense = {n: p.detach().clone() for n, p in model.named_parameters()}
    calib = Calibration(CalibSpec(source=corpus, n_samples=4, seq_len=16), model, tok)
    pruner = methods.create("streamline", {"replacement": replacement, "objective": objective, **FAST, **extra})
    result = prune(model, pruner, Budget(layers=k), calib, copy_model=True,
                   heal_data=TrainData(TrainDataSpec(source=corpus), tok))
    return model, result, tok, dense


def _window_mse(pruned, dense, op, ids):
    """MSE of the module at op["start"] against the dense h_{stop}, both from real forwards."""
    got = capture(pruned, ids, inputs=[op["start"]])
    with torch.no_grad():
        out = got.calls[op["start"]](arch.decoder_layers(pruned)[op["start"]], got.inputs[op["start"]])
        target = capture(dense, ids, outputs=[op["stop"] - 1]).outputs[op["stop"] - 1]
    return float(torch.nn.functional.mse_loss(out, target))


def _ids(tok, n=2, length=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, len(tok), (n, length), generator=g)


# ------------------------------------------------------------------------------ standalone layer calls


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("fam", ["llama", "qwen2", "gpt2", "gemma3"])
def test_captured_call_reproduces_the_layer_and_is_causal(fam, impl):
    model, tok = tiny_model(fam, n_layers=4)
    model.set_attn_implementation(impl)
    layer = arch.decoder_layers(model)[1]
    a = _ids(tok)
    b = a.clone()
    t = 10
    b[:, t + 1:] = _ids(tok, seed=1)[:, t + 1:]  # same prefix, different future
    outs = []
    for ids in (a, b):
        got = capture(model, ids, inputs=[1], outputs=[1])
        with torch.no_grad():
            out = got.calls[1](layer, got.inputs[1])
        torch.testing.assert_close(out, got.outputs[1])  # exactly what the model computes at position 1
        outs.append(out)
    torch.testing.assert_close(outs[0][:, :t + 1], outs[1][:, :t + 1])  # nothing leaks from after t
    assert not torch.allclose(outs[0][:, t + 1:], outs[1][:, t + 1:])


def test_the_official_bug_is_detectable():
    """Called without its mask (the official MSE trainer's call), an eager layer sees the future."""
    model, tok = tiny_model("llama", n_layers=4)
    model.set_attn_implementation("eager")
    layer = arch.decoder_layers(model)[1]
    a = _ids(tok)
    b = a.clone()
    b[:, 11:] = _ids(tok, seed=1)[:, 11:]
    outs = []
    for ids in (a, b):
        got = capture(model, ids, inputs=[1])
        kwargs = {k: v for k, v in got.calls[1].kwargs.items() if k != "attention_mask"}
        with torch.no_grad():
            outs.append(layer(got.inputs[1], **kwargs))
    assert not torch.allclose(outs[0][:, :11], outs[1][:, :11])


# ---------------------------------------------------------------------------------------- training


@pytest.mark.parametrize("replacement", ["layer", "mlp", "ffn"])
@pytest.mark.parametrize("fam", ["llama", "qwen2", "gpt2"])
def test_replacement_trains_only_the_module_and_exports(fam, replacement, corpus, tmp_path):
    model, result, tok, dense = _prune(fam, corpus, replacement)
    plan, pruned = result.plan, result.model
    op = plan.ops[0]
    assert op["op"] == "replace" and op["stop"] - op["start"] == 3  # window k+1
    assert arch.num_layers(pruned) == 4 and pruned.config.num_hidden_layers == 4
    assert plan.layers_removed == 2 and plan.removed_original == list(range(op["start"], op["stop"]))
    # net parameters removed = window - module, and the pruned model really is that much smaller
    assert arch.count_parameters(model) - arch.count_parameters(pruned) == plan.params_removed
    training = plan.cost["training"]
    assert training["steps"] == 2 and training["tokens"] == 8 * 16 and training["flops"] > 0
    assert training["peak_memory_bytes"] > 0 and training["device"] == "cpu"
    # the objective on the training windows went down: untrained (apply only) vs trained
    before = methods.create("streamline", {"replacement": replacement}).apply(copy.deepcopy(model), plan)
    ids = TrainData(TrainDataSpec(source=corpus), tok).windows(8, 16, seed=0)
    assert _window_mse(pruned, model, op, ids) < _window_mse(before, model, op, ids)
    # only the module changed; flags restored; fp32 model stays fp32
    module = arch.decoder_layers(pruned)[op["start"]]
    assert all(p.requires_grad for p in pruned.parameters())
    assert all(p.dtype == torch.float32 for p in module.parameters())
    module_ids = {id(p) for p in module.parameters()}
    layers_path = arch.family(pruned).layers
    for name, p in pruned.named_parameters():
        if id(p) in module_ids:
            continue
        if name.startswith(layers_path + "."):
            i, rest = name[len(layers_path) + 1:].split(".", 1)
            name = f"{layers_path}.{int(i) if int(i) < op['start'] else int(i) + 2}.{rest}"
        torch.testing.assert_close(p, dense[name], rtol=0, atol=0)
    # the trained model is causal: the future does not move earlier logits
    a = _ids(tok)
    b = a.clone()
    b[:, 9:] = _ids(tok, seed=3)[:, 9:]
    with torch.no_grad():
        torch.testing.assert_close(pruned(a).logits[:, :9], pruned(b).logits[:, :9])
    # export: layer and mlp round-trip through stock transformers; ffn refuses
    if replacement == "ffn":
        with pytest.raises(ExportError, match="no stock transformers form"):
            save_pruned(pruned, tok, plan, tmp_path / "out", base_model="tiny")
        assert not list(tmp_path.iterdir())  # no checkpoint, no temp folder left behind
        return
    out, reloaded = _round_trip(pruned, tok, plan, tmp_path)
    assert json.loads((out / "plan.json").read_text())["cost"]["training"]["steps"] == 2
    stock = arch.decoder_layers(reloaded)[op["start"]]
    assert type(stock) is type(arch.decoder_layers(reloaded)[0])
    if replacement == "mlp":
        assert isinstance(module, MLPBlock)
        assert not stock.get_submodule(ATTN_OUT[fam]).weight.any()  # the attention output zeroed
        assert "slower than the in-harness block" in (out / "README.md").read_text()


@pytest.mark.parametrize(("fam", "replacement"), [("llama", "mlp"), ("gpt2", "layer"), ("qwen2", "ffn")])
def test_lm_objective(fam, replacement, corpus):
    model, result, tok, _ = _prune(fam, corpus, replacement, objective="lm")
    training = result.plan.cost["training"]
    assert training["objective"] == "lm" and training["steps"] == 2
    before = methods.create("streamline", {"replacement": replacement}).apply(
        copy.deepcopy(model), result.plan)
    ids = TrainData(TrainDataSpec(source=corpus), tok).windows(8, 16, seed=0)  # the training windows
    with torch.no_grad():
        assert lm_loss(result.model, ids) < lm_loss(before, ids)


def test_mse_target_is_the_dense_hidden_state(corpus):
    """The teacher forward inside training gives exactly the dense model's h_{l+k+1} (raw residual)."""
    from methods.streamline import dense_view

    model, tok = tiny_model("qwen2", n_layers=6)
    calib = Calibration(CalibSpec(source=corpus, n_samples=4, seq_len=16), model, tok)
    pruner = methods.create("streamline", {**FAST, "objective": "mse"})
    plan = pruner.plan(model, calib, Budget(layers=2))
    pruned = pruner.apply(copy.deepcopy(model), plan)
    start, stop = plan.ops[0]["start"], plan.ops[0]["stop"]
    ids = _ids(tok)
    with dense_view(pruned, pruner._teachers[pruned]):
        got = capture(pruned, ids, inputs=[start], outputs=[stop - 1])
    assert arch.num_layers(pruned) == 4  # restored after the view
    with torch.no_grad():
        hs = model(ids, output_hidden_states=True).hidden_states
    torch.testing.assert_close(got.inputs[start], hs[start])
    if stop < 6:  # HF's last hidden state is post-norm; ours is the raw residual
        torch.testing.assert_close(got.outputs[stop - 1], hs[stop])


def test_heal_needs_training_data(corpus):
    model, tok = tiny_model("llama", n_layers=6)
    calib = Calibration(CalibSpec(source=corpus, n_samples=4, seq_len=16), model, tok)
    with pytest.raises(ConfigError, match="needs training data"):
        prune(model, methods.create("streamline"), Budget(layers=2), calib)


def test_none_replacement_trains_nothing(corpus):
    _, result, _, _ = _prune("llama", corpus, "none")
    assert result.heal_cost is None and result.plan.ops[0]["op"] == "remove"
    assert result.plan.removed_original == list(range(result.plan.removed_original[0],
                                                      result.plan.removed_original[0] + 2))


# ------------------------------------------------------------------------------------------- export


def _round_trip(model, tok, plan, tmp_path):
    out = save_pruned(model, tok, plan, tmp_path / "out", base_model="tiny")
    reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    ids = _ids(tok)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, model(ids).logits)
    return out, reloaded


@pytest.mark.parametrize("fam", ["gemma2", "phi", "gpt_neox", "mistral"])
def test_mlp_block_exports_as_a_stock_layer(fam, corpus, tmp_path):
    """Other layer layouts (Gemma's four norms, parallel residuals): the untrained block round-trips."""
    model, tok = tiny_model(fam, n_layers=6)
    pruner = methods.create("streamline", {"replacement": "mlp"})
    plan = pruner.plan(model, Calibration(CalibSpec(source=corpus, n_samples=4, seq_len=16), model, tok),
                       Budget(layers=2))
    pruner.apply(model, plan)
    start = plan.ops[0]["start"]
    with torch.no_grad():  # move the block off its initial weights so the check is not vacuous
        for p in arch.decoder_layers(model)[start].parameters():
            p.add_(0.01 * torch.randn_like(p))
    out, reloaded = _round_trip(model, tok, plan, tmp_path)
    stock = arch.decoder_layers(reloaded)[start]
    assert type(stock) is type(arch.decoder_layers(reloaded)[0])  # a stock decoder layer
    assert not stock.get_submodule(ATTN_OUT[fam]).weight.any()
    assert "slower than the in-harness block" in (out / "README.md").read_text()


def test_mse_skip_first_leaves_positions_out(corpus):
    """With every position but the last skipped, only the last position's error drives training."""
    _, full, _, _ = _prune("llama", corpus, "layer")
    _, skipped, _, _ = _prune("llama", corpus, "layer", mse_skip_first=15)
    assert full.plan.cost["training"]["loss_first"] != skipped.plan.cost["training"]["loss_first"]
    with pytest.raises(ConfigError):
        methods.create("streamline", {"mse_skip_first": 256})


def test_kd_loss_is_the_kl_from_dense_to_pruned_logits():
    from methods.streamline import kd_loss

    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(2, 3, 7, generator=g), torch.randn(2, 3, 7, generator=g)
    p, q = teacher.softmax(-1), student.softmax(-1)
    hand = (p * (p.log() - q.log())).sum(-1).mean()
    torch.testing.assert_close(kd_loss(student, teacher), hand)
    assert float(kd_loss(teacher, teacher)) == pytest.approx(0.0, abs=1e-6)
    hot = (teacher / 2).softmax(-1), (student / 2).softmax(-1)
    torch.testing.assert_close(kd_loss(student, teacher, 2.0), 4 * (hot[0] * (hot[0].log() - hot[1].log())).sum(-1).mean())


@pytest.mark.parametrize(("fam", "replacement"), [("llama", "layer"), ("qwen2", "mlp")])
def test_kd_objective_moves_the_pruned_model_toward_dense(fam, replacement, corpus):
    from methods.streamline import kd_loss

    model, result, tok, _ = _prune(fam, corpus, replacement, objective="kd", lr=1e-3)
    training = result.plan.cost["training"]
    assert training["objective"] == "kd" and training["steps"] == 2 and training["flops"] > 0
    before = methods.create("streamline", {"replacement": replacement}).apply(copy.deepcopy(model), result.plan)
    ids = TrainData(TrainDataSpec(source=corpus), tok).windows(8, 16, seed=0)  # the training windows
    with torch.no_grad():
        dense = model(ids).logits
        assert kd_loss(result.model(ids).logits, dense) < kd_loss(before(ids).logits, dense)
    assert arch.num_layers(result.model) == 4  # the dense view was put back


def test_streamline_defaults_to_the_official_schedule_and_the_lm_objective():
    params = methods.create("streamline").params
    assert params.schedule == "streamline_official" and params.objective == "lm"
    with pytest.raises(ConfigError):
        methods.create("streamline", {"objective": "kl"})
