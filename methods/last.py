"""The last-layer baseline ("reverse order", Lu et al., arXiv 2411.15558): drop the final k layers.

By default the very last layer goes too, as in the official code (32-layer models keep layers 0-23);
`keep_last=true` drops the k layers just before it instead (Gromov et al.'s simpler variant).

`heal=true` adds the paper's partial fine-tuning: the final norm, the LM head and the last `heal_layers`
remaining layers train on next-token loss (everything else frozen; the paper's best is 3 layers), with
the recipe of the official `partial_fine-tuning.py`: lr 1e-5 (`lr`), 2 epochs (`heal_epochs`: passes over
the same `train_samples` windows, reshuffled each epoch with the seed), 100 warm-up steps capped at 10 % of
the run (`warmup`), then Hugging Face Trainer's linear decay (`schedule=linear`, `min_lr` 0). The paper
computes the loss on the responses of Alpaca-cleaned instructions; no instruction data is available
offline here, so the loss is on every token of plain text from the run's training text
(`train.source`: the training range of the C4 sample by default, or a local .txt/.jsonl, which may hold
instruction data rendered as text). The plan's note says so.

Tied embeddings (`tied_head`, only when the model ties its LM head to the input embedding):
- `shared` (default): the tie is kept and the shared matrix trains through its output use only (the
  gradient through the input side would need a backward through the whole network). Being one tensor,
  the input embedding moves with it; the parameter count and the checkpoint stay tied.
- `untie`: the LM head gets its own copy and trains alone; the input embedding stays frozen. The pruned
  model then has vocab x hidden more parameters (subtracted from `params_removed` in the plan) and the
  checkpoint says `tie_word_embeddings: false`, so it reloads untied.
- `freeze`: the head is not trained (only the norm and the layers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from bench.core.errors import ConfigError
from bench.train import TrainParams, flops_per_token, lm_loss, matmul_params, train, unique
from methods import register
from methods.base import Budget, Pruner, Search


@register
class LastLayers(Pruner):
    name = "last"
    title = "Last-layer baseline (reverse order, optional healing)"
    paper = "2411.15558"
    needs_calibration = False
    order = 40
    may_train = True  # `trains` says per instance

    @dataclass(frozen=True)
    class Params(TrainParams):
        keep_last: bool = False
        heal: bool = False
        heal_layers: int = 3
        tied_head: Literal["shared", "untie", "freeze"] = "shared"
        heal_epochs: int = 2  # Reassessing's partial fine-tuning: 2 epochs
        lr: float = 1e-5  # Reassessing's partial fine-tuning
        min_lr: float = 0.0
        warmup: float = 0.1  # 100 warm-up steps in the paper's runs; a share of the (much shorter) run here
        schedule: Literal["cosine", "linear", "constant", "streamline_official"] = "linear"

        def __post_init__(self):
            super().__post_init__()
            if self.heal_layers < 0 or self.heal_epochs < 1:
                raise ValueError("heal_layers must be >= 0 and heal_epochs >= 1")

    @property
    def trains(self) -> bool:  # per instance: only with heal=true or heal=lora (then it needs training data)
        return self.params.heal or self.lora is not None

    def plan(self, model, calib, budget: Budget):
        from bench.models import arch

        p = self.params
        with Search(model, seconds=None) as search:
            n = arch.num_layers(model)
            k = budget.layers_for(model)
            stop = n - 1 if p.keep_last else n
            plan = self.removal_plan(model, budget, list(range(stop - k, stop)), {}, None)
        plan.cost.update(search.cost())
        if p.heal:
            plan.notes.append(f"Healed: the final norm, the LM head and the last {p.heal_layers} remaining layers "
                              f"were trained on next-token loss ({p.heal_epochs} epochs over {p.train_samples} "
                              f"windows of {p.train_seq_len} tokens, lr {p.lr:g}); the paper's loss is on the "
                              "responses of instruction data, none of which is available offline: here every "
                              "token of plain training text; see plan.json cost.training.")
            if arch.embeddings_tied(model) and p.tied_head == "untie":
                head = model.get_output_embeddings().weight.numel()
                plan.params_removed -= head
                plan.notes.append(f"The LM head was untied from the input embedding to train it alone: the pruned "
                                  f"model has {head:,} more parameters (counted in the ratio).")
            elif arch.embeddings_tied(model) and p.tied_head == "shared":
                plan.notes.append("The LM head is tied to the input embedding; the shared matrix was trained "
                                  "through the output head, so the input embedding changed with it.")
        return plan

    def heal(self, model, plan, data):
        from bench.models import arch

        p = self.params
        if not p.heal:
            return None
        if data is None:
            raise ConfigError("last heal=true fine-tunes the last layers and needs training data",
                              "pass --train-data c4 (or wikipedia, or a text file)")
        layers = arch.decoder_layers(model)
        n = len(layers)
        k = min(p.heal_layers, n)
        from bench.models.offload import pinned

        # a dispatched model: what trains is loaded into memory for good (k layers, the norm, the head)
        trained = [pinned(m) for m in layers[n - k:]]
        norm = arch.final_norm(model)
        if norm is not None:
            trained.append(pinned(norm))
        head = pinned(model.get_output_embeddings())
        tied = arch.embeddings_tied(model)
        hooks = []
        if not tied or p.tied_head != "freeze":
            if tied and p.tied_head == "untie":
                untie_head(model)
            elif tied:  # shared: no gradient through the input side of the shared matrix
                hooks.append(model.get_input_embeddings().register_forward_hook(lambda _m, _a, out: out.detach()))
            trained.append(head)
        params = unique(q for m in trained for q in m.parameters())
        device = next(model.parameters()).device
        per_epoch = math.ceil(p.train_samples / p.train_batch)
        n_batches = per_epoch * p.heal_epochs
        batches = epochs(data.windows(p.train_samples, p.train_seq_len, p.train_seed), p.heal_epochs, p.train_batch,
                         p.train_seed, device)
        frozen = matmul_params(layers[:n - k])
        path = matmul_params([*layers[n - k:], head])
        try:
            cost = train(model, params, lambda ids: lm_loss(model, ids), batches, n_batches, p,
                         flops_token=flops_per_token(frozen, path), what=f"last-layer healing ({k} layers)")
        finally:
            for h in hooks:
                h.remove()
        cost["objective"] = "lm"
        cost["epochs"] = p.heal_epochs
        cost["tied_head"] = p.tied_head if tied else "untied model"
        cost["data"] = data.describe()
        return cost


def epochs(windows, n_epochs: int, batch_size: int, seed: int, device):
    """Batches of `windows` for `n_epochs` passes, the first in order and each later one reshuffled (seeded)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    for epoch in range(n_epochs):
        order = torch.arange(len(windows)) if epoch == 0 else torch.randperm(len(windows), generator=gen)
        for start in range(0, len(windows), batch_size):
            yield windows[order[start:start + batch_size]].to(device)


def untie_head(model) -> None:
    """Give the LM head its own copy of the shared matrix; the config then saves and reloads untied."""
    import torch

    head = model.get_output_embeddings()
    head.weight = torch.nn.Parameter(head.weight.detach().clone(), requires_grad=head.weight.requires_grad)
    model.config.tie_word_embeddings = False
    text_config = getattr(model.config, "get_text_config", None)
    if text_config is not None:
        text_config().tie_word_embeddings = False
