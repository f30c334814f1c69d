"""The shared training loop: divergence, numerics (fp32 master weights), flags, schedule, determinism."""

import math

import pytest
import torch
from tiny import tiny_model

from bench import arch
from bench.errors import TrainingError
from bench.train import TrainParams, flops_per_token, lm_loss, lr_lambda, matmul_params, train

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _batches(tok, n, seq=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(1, len(tok), (2, seq), generator=g) for _ in range(n)]


def test_nan_loss_stops_with_the_step():
    model, tok = tiny_model("llama", n_layers=2)
    layer = arch.decoder_layers(model)[1]
    calls = []

    def loss_fn(ids):
        calls.append(1)
        loss = lm_loss(model, ids)
        return loss * float("nan") if len(calls) == 3 else loss

    with pytest.raises(TrainingError, match="at optimizer step 3 of 4"):
        train(model, list(layer.parameters()), loss_fn, _batches(tok, 4), 4, TrainParams(), flops_token=1.0, what="t")
    assert all(p.requires_grad for p in model.parameters())  # flags restored on the way out


def test_inf_loss_also_stops():
    model, tok = tiny_model("gpt2", n_layers=2)
    with pytest.raises(TrainingError, match="inf"):
        train(model, list(model.parameters()), lambda ids: lm_loss(model, ids) + float("inf"), _batches(tok, 1), 1,
              TrainParams(), flops_token=1.0, what="t")


def test_bf16_model_trains_with_fp32_master_weights_and_keeps_ties():
    model, tok = tiny_model("llama", n_layers=2, dtype=torch.bfloat16)
    assert arch.embeddings_tied(model)
    head = model.get_output_embeddings().weight
    before = head.detach().clone()
    seen = []

    def loss_fn(ids):
        seen.append(head.dtype)
        return lm_loss(model, ids)

    cost = train(model, [head], loss_fn, _batches(tok, 2), 2, TrainParams(lr=1e-2), flops_token=1.0, what="t")
    assert seen == [torch.float32, torch.float32]  # master weights in fp32 while training
    assert head.dtype == torch.bfloat16 and arch.embeddings_tied(model)  # cast back, same tensor for both
    assert not torch.equal(head, before)
    assert cost["precision"].startswith("bf16 autocast")


def test_same_seed_same_weights():
    outs = []
    for _ in range(2):
        model, tok = tiny_model("qwen2", n_layers=2)
        layer = arch.decoder_layers(model)[1]
        train(model, list(layer.parameters()), lambda ids, m=model: lm_loss(m, ids), _batches(tok, 3), 3,
              TrainParams(lr=1e-3), flops_token=1.0, what="t")
        outs.append(torch.cat([p.flatten() for p in layer.parameters()]))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


def test_grad_accum_counts_optimizer_steps():
    model, tok = tiny_model("llama", n_layers=2)
    cost = train(model, list(arch.decoder_layers(model)[0].parameters()), lambda ids: lm_loss(model, ids),
                 _batches(tok, 5), 5, TrainParams(grad_accum=2), flops_token=10.0, what="t")
    assert cost["steps"] == 3 and cost["tokens"] == 5 * 2 * 16 and cost["flops"] == 10.0 * 5 * 2 * 16
    assert cost["loss_curve"][0][0] == 1 and cost["loss_curve"][-1][0] == 3


def test_schedule_warms_up_then_decays_to_min_lr():
    f = lr_lambda(100, 0.1, 0.25)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(100) == pytest.approx(0.25)
    assert all(f(i) >= f(i + 1) for i in range(10, 99))


def test_flops_estimate():
    model, _ = tiny_model("llama", n_layers=2)
    layer = arch.decoder_layers(model)[0]
    n = matmul_params([layer])
    assert n == sum(p.numel() for p in layer.parameters() if p.dim() == 2)
    assert matmul_params([layer, layer]) == n  # each tensor once
    assert flops_per_token(10, 3) == 2 * 10 + 6 * 3


def test_params_validation():
    with pytest.raises(ValueError):
        TrainParams(train_samples=0)
    with pytest.raises(ValueError):
        TrainParams(min_lr=1.0, lr=1e-4)
    assert math.isclose(TrainParams().lr, 2e-4)
