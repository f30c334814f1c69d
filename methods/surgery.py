"""Replaying a plan's layer operations on a model (generic, through bench.models.arch)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from bench.core.errors import SurgeryError
from bench.models import arch
from methods.ops import DropSublayers, Merge, Op, Remove, parse


def mergeable_names(layer: torch.nn.Module) -> set[str]:
    """Parameters that LaCo's RDSC merge combines: the weights and biases of the layer's linear maps.

    Norms and other per-layer parameters are kept from the base layer (the paper merges q/k/v/o and the
    MLP projections only). Linear maps are recognised by type (nn.Linear, or a Conv1D-style module whose
    weight is 2-D), never by name.
    """
    names = set()
    for mod_name, module in layer.named_modules():
        weight = getattr(module, "weight", None)
        linear = isinstance(module, torch.nn.Linear) or (type(module).__name__ == "Conv1D" and weight is not None)
        if not linear:
            continue
        for p_name, _ in module.named_parameters(recurse=False):
            names.add(f"{mod_name}.{p_name}" if mod_name else p_name)
    return names


def merge_rule(rule: str, mergeable: set[str]) -> Callable[[str, torch.Tensor, list[torch.Tensor]], torch.Tensor]:
    """`paper`: theta_l + sum_k (theta_{l+k} - theta_l) (LaCo Eq. 1).
    `official`: the official notebook's in-place update, which ends as the last layer of the group."""

    def combine(name: str, base: torch.Tensor, others: list[torch.Tensor]) -> torch.Tensor:
        if name not in mergeable:
            return base
        if rule == "paper":
            base32 = base.float()
            return base32 + sum(o.float() - base32 for o in others)
        if rule == "official":
            out = base.clone()
            for o in others:  # `base += (o - base)` on the updated base, as the notebook does
                out += o - out
            return out
        raise SurgeryError(f"unknown merge rule {rule!r}", "use paper or official")

    return combine


def apply_ops(model, ops: list[Op | dict[str, Any]], modules: dict[str, torch.nn.Module] | None = None):
    """Apply plan ops (typed, or as the plan's JSON) in order. `modules` maps a replace op's `module` name
    to the module to install."""
    for op in map(parse, ops):
        if isinstance(op, Remove):
            arch.remove_layers(model, op.layers)
        elif isinstance(op, DropSublayers):
            from bench.models.sublayer import drop_sublayers

            drop_sublayers(model, op.attn, op.mlp)
        elif isinstance(op, Merge):
            base = arch.decoder_layers(model)[op.base]
            arch.merge_layers(model, op.base, op.others, merge_rule(op.rule, mergeable_names(base)))
        else:
            if not modules or op.module not in modules:
                raise SurgeryError(f"the plan replaces layers {op.start}..{op.stop - 1} with a trained "
                                   f"module {op.module!r} that was not given",
                                   "heal the model (train the replacement) or load the saved checkpoint")
            arch.replace_span(model, op.start, op.stop, modules[op.module])
    return model
