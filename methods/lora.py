"""LoRA healing for any method (`--param heal=lora`), merged into the weights afterwards (stock checkpoint).

Recipe (Shortened-LLaMA, arXiv 2402.02834, official `src/lora_retrain.py` and `script/prune_*.sh`; the
Reassessing paper's `finetune_pruned.py` uses the same r/alpha/dropout): LoRA on every linear map of the
decoder layers (q, k, v, o, gate, up, down for Llama), r 8, alpha 16, dropout 0.05, lr 1e-4, AdamW, 100
warm-up steps, 2 epochs over yahma/alpaca-cleaned, batch 64 (micro-batch 4), cutoff 256 tokens, merged
into the weights at the end (`--save_lora_merge`).

Here: the same targets, rank, alpha, dropout (active while training; the rest of the model stays in eval
mode) and learning rate, merged into the weights right after training (the evaluated model is the one
that exports; `merge_and_unload` leaves stock modules). Deviations, stated: the training text is the run's
plain-text training split (bench.data.training_text), not Alpaca instructions; CPU-sized data (`lora_samples`
windows of `lora_seq_len` tokens, micro-batch `lora_batch` x `lora_grad_accum`, `lora_epochs` passes
over the same windows, reshuffled per epoch); the shared loop's optimizer (bench.train: AdamW betas
0.9/0.95, cosine decay to `lora_min_lr`, warm-up as a share of the steps, gradient clipping at 1.0 as HF's
Trainer) instead of HF's linear schedule. The cost is metered by bench.train (CostMeter), like the other
training phases.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bench.core.errors import ConfigError


@dataclass(frozen=True)
class LoraHeal:
    lora_r: int = 8  # official 8
    lora_alpha: float = 16.0  # official 16
    lora_dropout: float = 0.05  # official 0.05
    lora_lr: float = 1e-4  # official 1e-4
    lora_min_lr: float = 0.0  # the end of the decay (HF's linear schedule ends at 0)
    lora_warmup: float = 0.06  # share of steps (official: 100 of about 1,600 steps)
    lora_weight_decay: float = 0.0  # HF Trainer default
    lora_grad_clip: float = 1.0  # HF Trainer default
    lora_samples: int = 128  # training windows (CPU-sized; official: alpaca-cleaned, 51.8k examples)
    lora_seq_len: int = 256  # official cutoff 256
    lora_batch: int = 4  # official micro-batch 4
    lora_grad_accum: int = 1  # official 16 (batch 64)
    lora_epochs: int = 1  # official 2
    lora_seed: int = 0

    def __post_init__(self):
        if min(self.lora_r, self.lora_samples, self.lora_batch, self.lora_grad_accum, self.lora_epochs) < 1:
            raise ValueError("lora_r, lora_samples, lora_batch, lora_grad_accum and lora_epochs must be >= 1")
        if not 0 <= self.lora_dropout < 1 or self.lora_lr <= 0 or self.lora_seq_len < 2:
            raise ValueError("need 0 <= lora_dropout < 1, lora_lr > 0 and lora_seq_len >= 2")

    def train_params(self):
        from bench.train import TrainParams

        return TrainParams(train_samples=self.lora_samples * self.lora_epochs, train_seq_len=self.lora_seq_len,
                           train_batch=self.lora_batch, grad_accum=self.lora_grad_accum, lr=self.lora_lr,
                           min_lr=self.lora_min_lr, weight_decay=self.lora_weight_decay, warmup=self.lora_warmup,
                           grad_clip=self.lora_grad_clip, train_seed=self.lora_seed)


FIELDS = {f.name for f in dataclasses.fields(LoraHeal)}


def split_params(values: dict[str, Any], own_fields: set[str], method: str) -> tuple[dict[str, Any], LoraHeal | None]:
    """Take `heal=lora` and the `lora_*` parameters out of a method's parameters; (the rest, the recipe)."""
    from methods.params import build_params

    values = dict(values)
    lora = {k: values.pop(k) for k in list(values) if k in FIELDS}
    heal = values.get("heal")
    wants = isinstance(heal, str) and heal.strip().lower() == "lora"
    if wants:
        values.pop("heal")
    elif isinstance(heal, str) and heal.strip().lower() == "none" and "heal" not in own_fields:
        values.pop("heal")
    if lora and not wants:
        raise ConfigError(f"{', '.join(sorted(lora))} set without heal=lora", "add --param heal=lora")
    return values, (build_params(LoraHeal, lora, method=method) if wants else None)


def as_params(recipe: LoraHeal) -> dict[str, Any]:
    return {"heal": "lora", **dataclasses.asdict(recipe)}


def target_modules(model: nn.Module) -> list[str]:
    """Full names of the linear maps inside the decoder layers (nn.Linear, or GPT-2's 2-D Conv1D)."""
    from bench.models import arch

    layers = set(map(id, arch.decoder_layers(model)))
    inside, names = set(), []
    for name, module in model.named_modules():
        if id(module) in layers:
            inside.add(name)
        linear = isinstance(module, nn.Linear) or (type(module).__name__ == "Conv1D" and module.weight.dim() == 2)
        if linear and any(name.startswith(p + ".") for p in inside):
            names.append(name)
    return names


def _epochs(data, recipe: LoraHeal, device):
    wins = data.windows(recipe.lora_samples, recipe.lora_seq_len, recipe.lora_seed)
    for epoch in range(recipe.lora_epochs):
        gen = torch.Generator().manual_seed(recipe.lora_seed * 1000 + epoch)
        order = torch.randperm(len(wins), generator=gen) if epoch else torch.arange(len(wins))
        for start in range(0, len(wins), recipe.lora_batch):
            yield wins[order[start:start + recipe.lora_batch]].to(device)


def heal_lora(model: nn.Module, recipe: LoraHeal, data) -> dict[str, Any]:
    """Train LoRA adapters on next-token loss, merge them into the weights; returns the measured cost."""
    from peft import LoraConfig, get_peft_model

    from bench.models import arch
    from bench.train import flops_per_token, lm_loss, matmul_params, train

    if data is None:
        raise ConfigError("heal=lora trains LoRA adapters and needs training data",
                          "pass --train-data c4 (or wikipedia, or a text file)")
    targets = target_modules(model)
    if not targets:
        raise ConfigError("no linear map found inside the decoder layers for LoRA", "this family cannot heal=lora")
    path = matmul_params([*arch.decoder_layers(model), model.get_output_embeddings()])
    config = LoraConfig(r=recipe.lora_r, lora_alpha=recipe.lora_alpha, lora_dropout=recipe.lora_dropout,
                        target_modules=targets, bias="none",
                        fan_in_fan_out=any(type(m).__name__ == "Conv1D" for n, m in model.named_modules()
                                           if n in set(targets)))
    torch.manual_seed(recipe.lora_seed)  # the adapters' A matrices are randomly initialised
    peft_model = get_peft_model(model, config)
    _adapters_off_meta(peft_model, recipe.lora_seed)
    adapters = [p for n, p in peft_model.named_parameters() if "lora_" in n]
    dropouts = [m for n, m in peft_model.named_modules() if n.rsplit(".", 2)[-2:-1] == ["lora_dropout"]]
    cfg = recipe.train_params()
    n_batches = recipe.lora_epochs * math.ceil(recipe.lora_samples / recipe.lora_batch)
    device = next(model.parameters()).device
    try:
        for m in dropouts:
            m.train()
        cost = train(model, adapters, lambda ids: lm_loss(model, ids), _epochs(data, recipe, device), n_batches,
                     cfg, flops_token=flops_per_token(0, path), what=f"LoRA healing (r {recipe.lora_r})")
    finally:
        for m in dropouts:
            m.eval()
        _merge_and_unload(peft_model)
    cost.update({"objective": "lm", "method": "lora", "targets": len(targets), "data": data.describe(),
                 "lora": dataclasses.asdict(recipe)})
    return cost


# --------------------------------------------------------------------------- dispatched models (bench.models.offload)


def _lora_layers(peft_model) -> list[nn.Module]:
    from peft.tuners.lora import LoraLayer

    return [m for m in peft_model.modules() if isinstance(m, LoraLayer)]


def _adapters_off_meta(peft_model, seed: int) -> None:
    """PEFT puts each adapter on its base layer's device, which is `meta` where the base weights are offloaded:
    there, create every adapter on the base layer's execution device and initialise them all again, replaying
    `get_peft_model`'s random draws (per layer: nn.Linear's init of A, then of B, then LoRA's init of A) from
    the same seed, so a dispatched model gets the in-memory model's adapters."""
    from bench.models import offload

    layers = _lora_layers(peft_model)
    if not any(p.is_meta for m in layers for n, p in m.named_parameters() if "lora_" in n):
        return
    torch.manual_seed(seed)
    for layer in layers:
        hooks = offload.offload_hooks(layer.get_base_layer())
        device = hooks[0].execution_device if hooks else next(layer.get_base_layer().parameters()).device
        for adapter in layer.lora_A:
            a, b = layer.lora_A[adapter], layer.lora_B[adapter]
            nn.Linear(a.in_features, a.out_features, bias=a.bias is not None)  # the draws update_layer made
            nn.Linear(b.in_features, b.out_features, bias=b.bias is not None)
            a.to_empty(device=device)
            b.to_empty(device=device)
            layer.reset_lora_parameters(adapter, True)


def _merge_and_unload(peft_model) -> None:
    """PEFT's merge_and_unload, one layer at a time with its base weights loaded and written back where they
    are offloaded (a model with nothing offloaded: PEFT's own call). PEFT's own offload path keeps every merged
    weight in memory (`onload_layer`), which a model larger than memory cannot afford."""
    from peft.tuners.lora import LoraLayer

    from bench.models import offload

    if not offload.is_dispatched(peft_model):
        peft_model.merge_and_unload()
        return
    for name, layer in list(peft_model.base_model.model.named_modules()):
        if isinstance(layer, LoraLayer):
            with offload.materialized([layer.get_base_layer()]):
                layer.merge()
            parent, _, attr = name.rpartition(".")
            setattr(peft_model.base_model.model.get_submodule(parent), attr, layer.get_base_layer())
    peft_model.unload()  # PEFT's own bookkeeping; no LoRA layer is left to unload
