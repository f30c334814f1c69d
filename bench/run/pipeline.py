"""One pruning job: plan on the dense model, apply to it (or a copy), heal. Shared by `bench prune` and
the runner, so both produce identical models for the same spec."""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from typing import Any

from bench.data.calibration import Calibration
from methods.base import Budget, PrunePlan, Pruner

log = logging.getLogger(__name__)


@dataclass
class PruneResult:
    model: Any
    plan: PrunePlan
    heal_cost: dict[str, Any] | None
    seconds: float


def prune(model, pruner: Pruner, budget: Budget, calib: Calibration | None, *, copy_model: bool = True,
          heal_data: Any = None) -> PruneResult:
    """Plan on `model` (left unchanged when `copy_model`), apply, heal when the method trains."""
    start = time.perf_counter()
    plan = pruner.plan(model, calib if pruner.needs_calibration else None, budget)
    plan.cost.setdefault("plan_seconds", time.perf_counter() - start)
    pruned = copy.deepcopy(model) if copy_model else model
    pruner.apply(pruned, plan)
    heal_cost = pruner.heal_all(pruned, plan, heal_data)
    if heal_cost:
        plan.cost["training"] = heal_cost
    seconds = time.perf_counter() - start
    log.info("%s: removed dense layers %s (%d layers, %.2f %% of parameters) in %.1f s", pruner.name,
             plan.removed_original, plan.layers_removed, 100 * plan.param_ratio, seconds)
    return PruneResult(pruned, plan, heal_cost, seconds)


# ------------------------------------------------------------------------- trained tensors and replay

TRAINED = "trained.safetensors"  # a cell's tensors that replaying its plan on the dense model does not give


def layer_origins(plan: PrunePlan) -> list[int | None]:
    """For each decoder layer of the pruned model, the dense layer it still is unchanged (None: merged,
    replaced or of an operation this function does not know: its tensors are not the dense layer's)."""
    origin: list[int | None] = list(range(plan.n_layers))
    for op in plan.ops:
        kind = op.get("op")
        if kind == "remove":
            gone = set(op["layers"])
            origin = [o for i, o in enumerate(origin) if i not in gone]
        elif kind == "merge":
            gone = set(op["others"])
            origin[op["base"]] = None
            origin = [o for i, o in enumerate(origin) if i not in gone]
        elif kind == "replace":
            origin = [*origin[:op["start"]], None, *origin[op["stop"]:]]
        elif kind == "fold":  # ReplaceMe: a linear map folded into one tensor of a kept layer
            origin[op["layer"]] = None
        else:
            origin = [None] * len(origin)
    return origin


def _layers_prefix(model) -> str:
    from bench.models import arch

    return arch.family(model).layers


def trained_tensors(dense, pruned, plan: PrunePlan) -> dict[str, Any]:
    """The parameters of `pruned` that replaying `plan`'s layer operations on `dense` does not reproduce
    bit for bit: trained modules (Streamline's replacement, `last`'s healed layers, LoRA-merged weights),
    merged layers (LaCo) and folded maps (ReplaceMe), by their names in the pruned model. Empty for a
    plan that only removes layers. Stored beside the plan so `bench prune --from-store` writes exactly
    the model the cell measured."""
    import torch

    prefix = _layers_prefix(pruned) + "."
    origin = layer_origins(plan)
    dense_params = dict(dense.named_parameters())
    out = {}
    for name, param in pruned.named_parameters():
        source = name
        if name.startswith(prefix):
            index, _, rest = name[len(prefix):].partition(".")
            o = origin[int(index)] if index.isdigit() and int(index) < len(origin) else None
            source = None if o is None else f"{prefix}{o}.{rest}"
        ref = dense_params.get(source) if source else None
        if param.is_meta:   # offloaded by a dispatch: never trained here
            continue
        if ref is None or ref.is_meta or ref.shape != param.shape or ref.dtype != param.dtype \
                or not torch.equal(ref, param):   # (a dense twin on disk cannot be compared: kept)
            out[name] = param.detach().to("cpu").contiguous().clone()
    return out


def trained_bytes(dense, pruned, plan: PrunePlan) -> bytes | None:
    """`trained_tensors` as a safetensors file's bytes (None when there are none)."""
    tensors = trained_tensors(dense, pruned, plan)
    if not tensors:
        return None
    from safetensors.torch import save

    from bench.models import arch

    return save(tensors, metadata={"plan_hash": plan.structure_hash(), "format": "pt",
                                   "tied_embeddings": str(arch.embeddings_tied(pruned)).lower()})


def load_trained(data: bytes) -> tuple[dict[str, Any], bool | None]:
    """A cell's trained tensors and whether its model kept the LM head tied to the input embedding."""
    import json
    import struct

    from safetensors.torch import load

    tensors = load(data)
    (size,) = struct.unpack("<Q", data[:8])  # the safetensors header: its length, then JSON
    meta = json.loads(data[8:8 + size]).get("__metadata__") or {}
    tied = meta.get("tied_embeddings")
    return tensors, None if tied is None else tied == "true"


def needs_trained_tensors(plan: PrunePlan) -> bool:
    """Whether replaying `plan` alone cannot give the pruned model (it trained, replaced or folded)."""
    return bool(plan.cost.get("training")) or any(op.get("op") in ("replace", "fold") for op in plan.ops)


def replay(model, pruner: Pruner, plan: PrunePlan, tensors: dict[str, Any] | None, tied: bool | None = None):
    """Apply `plan`'s layer operations to the dense `model` in place and load `tensors` (a cell's trained
    tensors) over them: the model the cell measured. Operations the generic surgery cannot redo without
    the pruner's state (ReplaceMe's fold) change no structure and are carried by `tensors`; `tied`
    False unties the LM head first (a cell that trained its head apart from the input embedding)."""
    import dataclasses

    import torch

    from bench.core.errors import SurgeryError
    from bench.models import arch

    structural = dataclasses.replace(plan, ops=[op for op in plan.ops if op.get("op") != "fold"])
    pruner.apply(model, structural)
    tensors = tensors or {}
    if tied is False and arch.embeddings_tied(model):
        from methods.last import untie_head  # the cell trained its LM head apart from the input embedding

        untie_head(model)
    params = dict(model.named_parameters())
    missing = [n for n in tensors if n not in params]
    if missing:
        raise SurgeryError(f"the stored trained tensors name {missing[0]!r}, which the replayed model lacks",
                           "the cell's plan and tensors come from another version of its method")
    with torch.no_grad():
        for name, tensor in tensors.items():
            target = params[name]
            if target.shape != tensor.shape:
                raise SurgeryError(f"stored tensor {name} has shape {tuple(tensor.shape)}, the replayed model "
                                   f"{tuple(target.shape)}", "the cell comes from another version of its method")
            target.copy_(tensor.to(device=target.device, dtype=target.dtype))
    return model
