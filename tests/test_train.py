"""The shared training loop: divergence, numerics (fp32 master weights), flags, schedule, determinism."""

import math

import pytest
import torch
from tiny import tiny_model

from bench.core.errors import TrainingError
from bench.models import arch
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


def test_constant_schedule_holds_lr_after_warm_up():
    f = lr_lambda(100, 0.1, 0.25, "constant")
    assert f(0) == pytest.approx(0.1) and all(f(i) == 1.0 for i in range(9, 100))


def test_official_streamline_schedule_is_nearly_constant():
    """The official MSE loop's scheduler, replayed step by step as it runs there (micro-batches, accum 16)."""
    lr, min_lr, micro, accum = 2e-4, 5e-5, 1600, 16

    def official(step):  # LLM_Streamline/scheduler.py, num_cycles 0.5, arguments as train_lightweightnetwork.py
        warm, total = micro * 0.01 * 0.5, micro * 0.5
        if step < warm:
            return step / max(1, warm)
        progress = (step - warm) / max(1, total - warm)
        return (min_lr + max(0, 0.5 * (1 + math.cos(math.pi * progress))) * (lr - min_lr)) / lr

    steps = micro // accum  # the scheduler steps once per optimizer step
    ours = lr_lambda(steps, 0.01, min_lr / lr, "streamline_official")
    # the lr used at optimizer step i is the official scheduler's value after i scheduler steps (i >= 1)
    for i in range(1, steps):
        assert ours(i) == pytest.approx(official(i + 1), abs=0.011)
    assert ours(steps - 1) * lr == pytest.approx(1.95e-4, rel=0.01)
    assert min(ours(i) for i in range(8, steps)) > 0.96


def test_on_step_checkpoints_of_a_constant_run_equal_the_shorter_runs():
    """Under `constant` with no warm-up, the state after k steps of a long run is the k-step run's, and
    `on_step` sees it (the Streamline study reads every training budget off one run this way)."""
    cfg = TrainParams(lr=1e-2, schedule="constant", warmup=0.0)

    def run(n, hook=None):
        model, tok = tiny_model("llama", n_layers=2)
        layer = arch.decoder_layers(model)[1]
        batches = _batches(tok, 6)[:n]
        train(model, list(layer.parameters()), lambda ids: lm_loss(model, ids), batches, n, cfg,
              flops_token=1.0, what="t", on_step=hook and (lambda step, tokens: hook(layer, step, tokens)))
        return {k: v.clone() for k, v in layer.state_dict().items()}

    seen, at_2 = [], {}

    def hook(layer, step, tokens):
        seen.append((step, tokens))
        if step == 2:
            at_2.update({k: v.detach().clone() for k, v in layer.state_dict().items()})

    final = run(6, hook)
    assert seen == [(k, k * 2 * 16) for k in range(1, 7)]
    short = run(2)
    for key, value in short.items():
        assert torch.equal(at_2[key].to(value.dtype), value), key
    assert not torch.equal(at_2["mlp.up_proj.weight"], final["mlp.up_proj.weight"])
