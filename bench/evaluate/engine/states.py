"""The dense model's hidden states at layer boundaries, reused by pruned models that share those layers.

A training-free pruned model keeps the dense model's layers `0 .. k-1` bit-identical, where `k` is its
first removed, merged or replaced layer (`first_changed_layer`, from the PrunePlan, then checked tensor by
tensor: anything that trained or wrapped an earlier layer, e.g. LoRA healing, lowers it). For every
evaluation row its hidden state entering layer `k` is then the dense model's, so the pruned model only runs
layers `k ..` (`stubbed`: the layers before the boundary are swapped for modules that hand the stored
state on, and swapped back afterwards).

`BoundaryStates` holds those states per row (keyed by the row's tokens, so any cell evaluating the same
requests finds them), per boundary, on the CPU, within a byte budget: `max_bytes` (default 1 GiB, or the
environment's `BENCH_ENGINE_STATE_MB`). A boundary is stored for a call's rows only if all of them fit;
nothing is evicted. A row without a stored boundary simply starts deeper in the dense layers (from the
deepest boundary it has, at worst the embeddings), so a full budget costs time, never correctness.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Sequence

import torch
from torch import nn

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 1 << 30


def default_max_bytes() -> int:
    value = os.environ.get("BENCH_ENGINE_STATE_MB")
    return int(float(value) * (1 << 20)) if value else DEFAULT_MAX_BYTES


class BoundaryStates:
    """boundary b (number of dense layers run) -> row key -> hidden state [row length, hidden]."""

    def __init__(self, max_bytes: int | None = None):
        self.max_bytes = default_max_bytes() if max_bytes is None else int(max_bytes)
        self.layers: dict[int, dict[bytes, torch.Tensor]] = {}
        self.reserved: dict[int, int] = {}
        self.nbytes = 0

    def has(self, boundary: int, keys: Iterable[bytes]) -> bool:
        stored = self.layers.get(boundary)
        return stored is not None and all(k in stored for k in keys)

    def deepest(self, keys: Sequence[bytes], limit: int) -> int:
        """The deepest boundary <= `limit` stored for every key (0: none; start from the embeddings)."""
        return max((b for b in self.layers if b <= limit and self.has(b, keys)), default=0)

    def reserve(self, boundary: int, nbytes: int) -> bool:
        """Claim `nbytes` for states of `boundary`; False (nothing claimed) when the budget would overflow."""
        if self.nbytes + nbytes > self.max_bytes:
            return False
        self.nbytes += nbytes
        self.reserved[boundary] = self.reserved.get(boundary, 0) + nbytes
        return True

    def put(self, boundary: int, key: bytes, state: torch.Tensor) -> None:
        """Store a state whose bytes were reserved."""
        self.layers.setdefault(boundary, {})[key] = state

    def discard(self, boundary: int) -> None:
        """Forget a boundary (and give its bytes back)."""
        self.layers.pop(boundary, None)
        self.nbytes -= self.reserved.pop(boundary, 0)

    def rows(self, boundary: int, keys: Sequence[bytes]) -> list[torch.Tensor]:
        """The stored states of `keys` at `boundary`, one [row length, hidden] tensor each."""
        return [self.layers[boundary][k] for k in keys]

    def batch(self, boundary: int, keys: Sequence[bytes], width: int, device, dtype) -> torch.Tensor:
        rows = self.rows(boundary, keys)
        out = torch.zeros((len(rows), width, rows[0].shape[-1]), dtype=dtype)
        for r, state in enumerate(rows):
            out[r, : state.shape[0]] = state
        return out.to(device)


def first_changed_layer(plan) -> int:
    """The first dense layer a plan removes, merges or replaces (`plan.n_layers` when none).

    Ops are in the index space of the model when each runs; indices below every earlier op's smallest
    index are still dense indices, so the smallest index over all ops is the dense boundary."""
    indices: list[int] = []
    for op in plan.ops:
        if op["op"] == "remove":
            indices += [int(i) for i in op["layers"]]
        elif op["op"] == "merge":
            indices += [int(op["base"]), *(int(i) for i in op["others"])]
        elif op["op"] == "replace":
            indices.append(int(op["start"]))
        else:  # an op this function does not know: reuse nothing
            return 0
    return min(indices, default=plan.n_layers)


def shared_prefix(dense, pruned, limit: int) -> int:
    """How many leading layers `pruned` shares bit for bit with `dense` (at most `limit`); 0 when the
    embeddings differ. Parameters and buffers are compared, so trained or wrapped layers are caught."""
    from bench.models import arch

    if dense is pruned:
        return min(limit, arch.num_layers(dense))
    if not _same_module(dense.get_input_embeddings(), pruned.get_input_embeddings()):
        return 0
    dense_layers, pruned_layers = arch.decoder_layers(dense), arch.decoder_layers(pruned)
    limit = min(limit, len(dense_layers), len(pruned_layers))
    for i in range(limit):
        if not _same_module(dense_layers[i], pruned_layers[i]):
            log.info("layer %d differs from the dense model's although the plan keeps it; reusing %d layers", i, i)
            return i
    return limit


def _same_module(a: nn.Module, b: nn.Module) -> bool:
    if type(a) is not type(b):
        return False
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys():
        return False
    offloaded = {k for k, x in sa.items() if x.is_meta or sb[k].is_meta}
    if offloaded:  # a dispatched model (bench.models.offload): offloaded weights are compared by where they are read from
        from bench.models.offload import weight_sources

        sources = weight_sources(a)
        if sources is None or sources != weight_sources(b) or set(sources) != offloaded:
            return False
    return all(x.shape == sb[k].shape and x.dtype == sb[k].dtype and torch.equal(x, sb[k])
               for k, x in sa.items() if k not in offloaded)


class _Passthrough(nn.Module):
    """Stands in for a layer before the boundary: hands its input on (it is not used)."""

    def __init__(self, replaced: nn.Module):
        super().__init__()
        for name in ("attention_type", "layer_idx"):
            if hasattr(replaced, name):
                setattr(self, name, getattr(replaced, name))

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states


class _Inject(_Passthrough):
    """Stands in for the last layer before the boundary: returns the stored boundary states."""

    def __init__(self, replaced: nn.Module, states: torch.Tensor):
        super().__init__(replaced)
        self.states = states

    def forward(self, hidden_states, *args, **kwargs):
        if self.states.shape[:2] != hidden_states.shape[:2]:
            raise RuntimeError(f"boundary states {tuple(self.states.shape)} do not fit the batch "
                               f"{tuple(hidden_states.shape)}")
        return self.states


@contextlib.contextmanager
def stubbed(model, boundary: int, states: torch.Tensor | None):
    """Run `model` with its first `boundary` layers replaced by `states` (the hidden states entering layer
    `boundary`); the real layers are back when the block ends, whatever happens inside."""
    if boundary == 0:
        yield
        return
    from bench.models import arch

    layers = arch.decoder_layers(model)
    saved = [layers[i] for i in range(boundary)]
    try:
        for i in range(boundary - 1):
            layers[i] = _Passthrough(saved[i])
        layers[boundary - 1] = _Inject(saved[boundary - 1], states)
        yield
    finally:
        for i, layer in enumerate(saved):
            layers[i] = layer


@contextlib.contextmanager
def recording(model, boundaries: Iterable[int], sink: dict[int, torch.Tensor]):
    """Capture the hidden states leaving layer b-1 (= entering b) for each boundary b, into `sink[b]`."""
    from bench.models import arch

    layers = arch.decoder_layers(model)
    handles = []
    for b in boundaries:
        def hook(module, args, output, b=b):
            sink[b] = arch.layer_output(output)
        handles.append(layers[b - 1].register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()
