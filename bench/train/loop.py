"""A small, seeded training loop shared by healing and replacement modules.

One optimizer over the given parameters, everything else frozen (their `requires_grad` is restored after).
Numerics: the trained parameters are fp32 master weights for the whole run (cast back to the model's
dtype at the end). An fp32 model trains in plain fp32; a bf16/fp16 model runs its forward under bf16
autocast (frozen parts stay in their dtype, matmuls in bf16, losses in fp32). The model stays in eval
mode: no dropout, so a run is a function of its seed and data. AdamW (betas 0.9/0.95, weight decay 1e-3,
lr 2e-4 by default, as LLM-Streamline's official code), gradient clipping, and a learning-rate schedule
named by `schedule` (see `lr_lambda`): `cosine` (linear warm-up over `warmup` of the steps, cosine decay to
`min_lr` at the last step), `linear` (warm-up, then a straight line to `min_lr`), `constant` (warm-up,
then `lr`), or `streamline_official` (the schedule
LLM-Streamline's official MSE loop actually runs, see `lr_lambda`). A NaN or inf loss stops training with
TrainingError naming the step.

Cost is measured with `bench.core.costmeter.CostMeter`; FLOPs are estimated as
    2 x (frozen forward parameters) x tokens  +  6 x (trainable-path parameters) x tokens,
where the trainable path is every matmul between the first trained module and the loss (forward,
activation gradients and weight gradients; frozen matmuls on that path get no weight gradient, so this
over-counts them by a third) and the frozen part is what only runs forward (the teacher, the prefix).
Embedding lookups, norms and attention scores (about 4 x seq_len x d per layer and token) are left out.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

from bench.core.costmeter import CostMeter
from bench.core.errors import TrainingError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainParams:
    """Training knobs shared by every method that trains (CPU-sized defaults)."""

    train_samples: int = 128  # training windows drawn from the training split (one epoch)
    train_seq_len: int = 256  # tokens per window
    train_batch: int = 4  # windows per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 2e-4
    min_lr: float = 5e-5
    weight_decay: float = 1e-3
    warmup: float = 0.01  # share of the steps with a linear warm-up
    grad_clip: float = 5.0  # max gradient norm; 0 disables clipping
    train_seed: int = 0  # window sampling and order, and any random init
    schedule: Literal["cosine", "linear", "constant", "streamline_official"] = "cosine"

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}: use one of {', '.join(SCHEDULES)}")
        if min(self.train_samples, self.train_seq_len - 1, self.train_batch, self.grad_accum) < 1:
            raise ValueError("train_samples, train_batch and grad_accum must be >= 1 and train_seq_len >= 2")
        if not (self.lr > 0 and 0 <= self.min_lr <= self.lr and 0 <= self.warmup < 1 and self.grad_clip >= 0):
            raise ValueError("need lr > 0, 0 <= min_lr <= lr, 0 <= warmup < 1 and grad_clip >= 0")

    def train_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k in TrainParams.__dataclass_fields__}


def flops_per_token(frozen_params: int, path_params: int) -> float:
    return 2.0 * frozen_params + 6.0 * path_params


def matmul_params(modules: Iterable[nn.Module]) -> int:
    """Weights that take part in matmuls (2-D or more), each tensor once: the FLOPs-relevant size."""
    seen, total = set(), 0
    for module in modules:
        for p in module.parameters():
            if p.dim() >= 2 and id(p) not in seen:
                seen.add(id(p))
                total += p.numel()
    return total


@contextlib.contextmanager
def only_trainable(model: nn.Module, params: Sequence[nn.Parameter]):
    """Freeze every parameter of `model` except `params`; restore the flags afterwards."""
    flags = {p: p.requires_grad for p in model.parameters()}
    extra = {p: p.requires_grad for p in params if p not in flags}
    try:
        for p in flags:
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        yield
    finally:
        for p, flag in {**flags, **extra}.items():
            p.requires_grad_(flag)


@contextlib.contextmanager
def fp32_master(params: Sequence[nn.Parameter]):
    """Hold `params` in fp32 while training (same Parameter objects, so ties survive); cast back after."""
    dtypes = {p: p.dtype for p in params}
    try:
        for p in params:
            if p.dtype != torch.float32:
                p.data = p.data.float()
        yield
    finally:
        with torch.no_grad():
            for p, dtype in dtypes.items():
                if p.dtype != dtype:
                    p.data = p.data.to(dtype)


def unique(params: Iterable[nn.Parameter]) -> list[nn.Parameter]:
    out, seen = [], set()
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


SCHEDULES = ("cosine", "linear", "constant", "streamline_official")
# LLM-Streamline's official MSE loop (LLM_Streamline/train_lightweightnetwork.py @adf50ba) sets its cosine
# schedule's warm-up to 0.005 x and its horizon to 0.5 x the number of *micro-batches*, but steps the
# scheduler once per optimizer step, every `gradient_accumulation_step` = 16 micro-batches. In optimizer
# steps the warm-up is therefore 0.005 x 16 = 8 % of the run and the horizon 0.5 x 16 = 8 runs: the last
# step is at 11.6 % of the cosine, lr 2e-4 -> 1.95e-4 (min_lr 5e-5 is never approached).
_OFFICIAL_ACCUM = 16


def lr_lambda(steps: int, warmup: float, min_ratio: float, schedule: str = "cosine") -> Callable[[int], float]:
    """The multiplier of `lr` at optimizer step 0..steps-1.

    `cosine`: linear warm-up over round(warmup x steps) steps, then a half cosine from 1 to `min_ratio`
    (reached at step `steps`, just after the last update). `constant`: the same warm-up, then 1. `streamline_official`: the official
    MSE loop's effective schedule (warm-up over 8 % of the steps, a cosine whose horizon is 8 x the steps,
    so the multiplier ends near 0.97 with min_ratio 0.25; `warmup` is ignored).
    """
    if schedule == "streamline_official":
        warm = 0.005 * _OFFICIAL_ACCUM * steps
        horizon = 0.5 * _OFFICIAL_ACCUM * steps

        def official(step: int) -> float:
            if step < warm:  # official scheduler's first value is step 0 -> 0; we start at step 1's
                return (step + 1) / max(1.0, warm)
            progress = (step - warm) / max(1.0, horizon - warm)
            return min_ratio + (1 - min_ratio) * max(0.0, 0.5 * (1 + math.cos(math.pi * progress)))

        return official
    warm = max(1, round(warmup * steps)) if warmup > 0 else 0

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if schedule == "constant":
            return 1.0
        if schedule == "linear":  # Hugging Face Trainer's default, to min_ratio instead of 0
            return 1 - (1 - min_ratio) * min(1.0, (step - warm) / max(1, steps - warm))
        progress = (step - warm) / max(1, steps - warm)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def train(model: nn.Module, params: Sequence[nn.Parameter], loss_fn: Callable[[torch.Tensor], torch.Tensor],
          batches: Iterable[torch.Tensor], n_batches: int, cfg: TrainParams, *, flops_token: float,
          what: str, on_step: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Minimise `loss_fn(batch)` over `params` of `model`, one pass over `batches` (token-id tensors).

    `on_step(step, tokens)`, when given, is called after every optimizer step with the steps and tokens done
    so far (the trained parameters still in fp32 master form): a caller's checkpoint hook. Under the
    `constant` schedule with `warmup=0` the state after k steps is exactly that of a k-step run on the
    same batches, so one long run gives every shorter budget on the way.
    Returns the measured cost and the loss trajectory (plain data for `plan.cost["training"]`).
    """
    params = unique(params)
    ref = next(model.parameters())
    device, model_dtype = ref.device, ref.dtype
    use_autocast = model_dtype != torch.float32
    steps = math.ceil(n_batches / cfg.grad_accum)
    torch.manual_seed(cfg.train_seed)
    curve: list[tuple[int, float]] = []
    every = max(1, steps // 20)
    losses: list[float] = []
    meter = CostMeter(device)
    with meter, only_trainable(model, params), fp32_master(params):
        opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(steps, cfg.warmup, cfg.min_lr / cfg.lr, cfg.schedule))
        step, micro, accum_loss, accum_tokens = 0, 0, 0.0, 0
        for batch in batches:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_autocast):
                loss = loss_fn(batch)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise TrainingError(f"{what}: the training loss became {value} at optimizer step {step + 1} "
                                    f"of {steps}", "lower the learning rate (--param lr=...) or train in fp32")
            (loss.float() / cfg.grad_accum).backward()
            micro += 1
            accum_loss += value / cfg.grad_accum
            accum_tokens += batch.numel()
            if micro % cfg.grad_accum and micro != n_batches:
                continue
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            losses.append(accum_loss)
            if step == 1 or step % every == 0 or step == steps:
                curve.append((step, round(accum_loss, 5)))
            meter.add(tokens=accum_tokens, steps=1, flops=flops_token * accum_tokens)
            log.debug("%s: step %d/%d loss %.4f", what, step, steps, accum_loss)
            accum_loss, accum_tokens = 0.0, 0
            if on_step is not None:
                on_step(step, meter.tokens)
        del opt
    tail = losses[-max(1, len(losses) // 10):]
    result = meter.result()
    result.update({
        "what": what, "trainable_params": sum(p.numel() for p in params),
        "precision": "bf16 autocast, fp32 master weights" if use_autocast else "fp32",
        "loss_first": losses[0] if losses else None, "loss_last": sum(tail) / len(tail) if tail else None,
        "loss_curve": curve, "flops_per_token": flops_token, "hyper": cfg.train_dict(),
    })
    log.info("%s: %d steps, %d tokens, loss %.4f -> %.4f in %.1f s", what, step, meter.tokens,
             result["loss_first"] or float("nan"), result["loss_last"] or float("nan"), meter.wall_seconds)
    return result


def lm_loss(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of `model` on a batch of full (unpadded) windows."""
    return model(input_ids=ids, labels=ids, use_cache=False).loss
