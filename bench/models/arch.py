"""Architecture knowledge as data, and layer surgery through it.

Each family (keyed by `config.model_type`) says where its decoder layers live, which config keys count
them, which config lists hold one entry per layer, and where the final norm, embedding and LM head are.
Unknown families fall back to the largest ModuleList of identical blocks. Methods never touch model
internals: they call `remove_layers`, `replace_span` and `merge_layers` here, which keep `layer_idx`,
the config (count and per-layer lists) and the KV cache consistent, so a pruned model generates
correctly and saves as a checkpoint that stock `transformers` reloads.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bench.core.errors import SurgeryError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Family:
    """Where one architecture family keeps its parts (dotted module paths from the CausalLM; `ffn`
    relative to a decoder layer)."""

    layers: str
    final_norm: str | None
    embed: str
    lm_head: str = "lm_head"
    count_keys: tuple[str, ...] = ("num_hidden_layers",)
    per_layer_keys: tuple[str, ...] = ("layer_types",)
    # the feed-forward sub-block as (pre-norm, mlp, post-norm or None): a layer with its attention output
    # zeroed computes h + post(mlp(pre(h))) (parallel-residual families too); None where unknown
    ffn: tuple[str, str, str | None] | None = None
    # the feed-forward block's output projection (a Linear, or GPT-2's Conv1D), relative to a decoder layer:
    # where ReplaceMe folds its linear map; None where unknown
    ffn_out: str | None = "mlp.down_proj"


_DECODER = dict(layers="model.layers", final_norm="model.norm", embed="model.embed_tokens")
_POST_ATTN = ("post_attention_layernorm", "mlp", None)
_GEMMA = ("pre_feedforward_layernorm", "mlp", "post_feedforward_layernorm")

FAMILIES: dict[str, Family] = {
    "llama": Family(**_DECODER, ffn=_POST_ATTN),
    "mistral": Family(**_DECODER, ffn=_POST_ATTN),
    "qwen2": Family(**_DECODER, ffn=_POST_ATTN),
    "qwen3": Family(**_DECODER, ffn=_POST_ATTN),
    "gemma2": Family(**_DECODER, ffn=_GEMMA),
    "gemma3_text": Family(**_DECODER, ffn=_GEMMA),
    "gemma3": Family(**_DECODER, ffn=_GEMMA),
    "phi3": Family(**_DECODER, ffn=_POST_ATTN),
    "phi": Family(layers="model.layers", final_norm="model.final_layernorm", embed="model.embed_tokens",
                  ffn=("input_layernorm", "mlp", None), ffn_out="mlp.fc2"),
    "gpt2": Family(layers="transformer.h", final_norm="transformer.ln_f", embed="transformer.wte",
                   count_keys=("n_layer",), ffn=("ln_2", "mlp", None), ffn_out="mlp.c_proj"),
    "opt": Family(layers="model.decoder.layers", final_norm="model.decoder.final_layer_norm",
                  embed="model.decoder.embed_tokens", ffn_out="fc2"),
    "gpt_neox": Family(layers="gpt_neox.layers", final_norm="gpt_neox.final_layer_norm",
                       embed="gpt_neox.embed_in", lm_head="embed_out", ffn=_POST_ATTN,
                       ffn_out="mlp.dense_4h_to_h"),
}


def _get(root: nn.Module, path: str | None) -> nn.Module | None:
    if not path:
        return None
    try:
        return root.get_submodule(path)
    except AttributeError:
        return None


def _generic_family(model: nn.Module) -> Family:
    """The largest ModuleList of blocks that all share one class; other parts unknown."""
    best_name, best_len = None, 0
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) > best_len:
            if len({type(m) for m in module}) == 1:
                best_name, best_len = name, len(module)
    if best_name is None:
        raise SurgeryError(f"cannot find the decoder layers of {type(model).__name__}",
                           "add its family to bench.models.arch.FAMILIES")
    embed = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    embed_name = next((n for n, m in model.named_modules() if m is embed), "")
    log.warning("unknown model_type %r: using generic layer list %s", model.config.model_type, best_name)
    return Family(layers=best_name, final_norm=None, embed=embed_name, ffn_out=None)


def family(model: nn.Module) -> Family:
    fam = FAMILIES.get(getattr(model.config, "model_type", ""))
    if fam is not None and isinstance(_get(model, fam.layers), nn.ModuleList):
        return fam
    return _generic_family(model)


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    return model.get_submodule(family(model).layers)


def num_layers(model: nn.Module) -> int:
    return len(decoder_layers(model))


def final_norm(model: nn.Module) -> nn.Module | None:
    return _get(model, family(model).final_norm)


def layer_output(output) -> torch.Tensor:
    """A decoder layer's hidden-state output (layers return a tensor or a tuple led by one)."""
    return output[0] if isinstance(output, (tuple, list)) else output


class StopForward(Exception):
    """Raised by a forward hook to end the model's forward there (`forward_until_stop` catches it)."""


@contextlib.contextmanager
def hooks(handles: list) -> Iterator[list]:
    """Hooks registered for the duration: `handles` (torch's removable handles) are removed on exit, even on
    error."""
    try:
        yield handles
    finally:
        for h in handles:
            h.remove()


def forward_until_stop(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor | None = None) -> None:
    """The model's forward on a batch (no cache), for what its hooks record; a hook raising StopForward ends
    it there (no LM head)."""
    try:
        model(input_ids=ids, attention_mask=mask, use_cache=False)
    except StopForward:
        pass


# ----------------------------------------------------------------------------------------------- surgery


def set_layers(model: nn.Module, layers: list[nn.Module], kept_positions: list[int]) -> None:
    """Install `layers`; `kept_positions[i]` is the old index whose per-layer config entries layer i takes."""
    fam = family(model)
    parent_path, _, attr = fam.layers.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, attr, nn.ModuleList(layers))
    renumber_layers(model)
    config = model.config
    for key in fam.count_keys + ("num_hidden_layers",):
        if hasattr(config, key):
            setattr(config, key, len(layers))
    for key in fam.per_layer_keys:
        values = getattr(config, key, None)
        if isinstance(values, (list, tuple)):
            setattr(config, key, [values[i] for i in kept_positions])


@dataclass
class LayerSnapshot:
    """The decoder layer list and the config keys that describe it (counts, per-layer lists), saved so a
    trial surgery can be undone; `states` keeps the weights of layers an operation changes in place."""

    layers: list[nn.Module]
    config: dict[str, Any]
    states: dict[int, dict[str, torch.Tensor]]
    offloaded: list[tuple[Any, Any]] = dataclasses.field(default_factory=list)  # (hook, weights map) pairs


def snapshot_layers(model: nn.Module, modified: Sequence[int] = ()) -> LayerSnapshot:
    """Save the layer list and its config entries (and the weights of the layers at `modified`)."""
    fam, cfg = family(model), model.config
    keys = [k for k in dict.fromkeys(("num_hidden_layers", *fam.count_keys, *fam.per_layer_keys)) if hasattr(cfg, k)]
    layers = list(decoder_layers(model))
    return LayerSnapshot(layers, {k: copy.copy(getattr(cfg, k)) for k in keys},
                         {i: {k: v.detach().clone() for k, v in layers[i].state_dict().items() if not v.is_meta}
                          for i in modified}, _offload_maps([layers[i] for i in modified]))


def restore_layers(model: nn.Module, snap: LayerSnapshot) -> None:
    """Put a snapshot back: the config entries first (set_layers reads the per-layer lists), then the layers
    and the saved weights."""
    for key, value in snap.config.items():
        setattr(model.config, key, value)
    set_layers(model, snap.layers, list(range(len(snap.layers))))
    for i, state in snap.states.items():
        snap.layers[i].load_state_dict(state, strict=not snap.offloaded)
    for hook, weights_map in snap.offloaded:  # offloaded weights: the hooks read where they read before
        hook.weights_map = weights_map


@contextlib.contextmanager
def layers_swapped(model: nn.Module, layers: list[nn.Module], per_layer: dict[str, list]) -> Iterator[None]:
    """Temporarily install `layers` with the config's per-layer lists `per_layer`; the previous layers and
    config come back on exit (also after an error)."""
    snap = snapshot_layers(model)
    try:
        set_layers(model, layers, [0] * len(layers))
        for key, values in per_layer.items():
            setattr(model.config, key, values)
        yield
    finally:
        restore_layers(model, snap)


def renumber_layers(model: nn.Module) -> None:
    """Set every `layer_idx` inside layer i to i (attention modules index the KV cache with it). Layers whose
    attention sublayer was dropped (`attention_dropped`, bench.models.sublayer) take no cache index: the surviving
    attentions are numbered 0..A-1, so cache layer 0 (whose length the model reads) always exists."""
    cache_idx = 0
    for layer in decoder_layers(model):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = cache_idx
        cache_idx += not getattr(layer, "attention_dropped", False)


def check_indices(indices: Sequence[int], n: int, what: str, unit: str = "layer") -> list[int]:
    """The sorted layer indices of a surgery (`what` names it, `unit` what an index selects: a layer, or an
    attention or MLP sublayer); a duplicate or an index outside 0..n-1 is a SurgeryError."""
    idx = [int(i) for i in indices]
    if len(set(idx)) != len(idx):
        raise SurgeryError(f"duplicate layer indices in {what}: {sorted(idx)}", "list each layer once")
    bad = [i for i in idx if not 0 <= i < n]
    if bad:
        raise SurgeryError(f"{unit} indices {bad} out of range for a model with {n} layers",
                           f"use indices 0..{n - 1}")
    return sorted(idx)


def remove_layers(model: nn.Module, indices: Sequence[int]) -> nn.Module:
    """Delete the decoder layers at `indices` (in place); removing nothing is the identity."""
    layers = list(decoder_layers(model))
    drop = set(check_indices(indices, len(layers), "remove_layers"))
    if len(drop) == len(layers):
        raise SurgeryError(f"cannot remove all {len(layers)} layers", "keep at least one layer")
    if not drop:
        return model
    kept = [i for i in range(len(layers)) if i not in drop]
    set_layers(model, [layers[i] for i in kept], kept)
    log.debug("removed layers %s; %d remain", sorted(drop), len(kept))
    return model


def replace_span(model: nn.Module, start: int, stop: int, module: nn.Module) -> nn.Module:
    """Replace layers[start:stop] by one `module` (called like a decoder layer; takes layer start's config)."""
    layers = list(decoder_layers(model))
    n = len(layers)
    if not 0 <= start < stop <= n:
        raise SurgeryError(f"span [{start}, {stop}) is not inside a model with {n} layers",
                           f"use 0 <= start < stop <= {n}")
    kept = list(range(start + 1)) + list(range(stop, n))
    set_layers(model, layers[:start] + [module] + layers[stop:], kept)
    return model


Combine = Callable[[str, torch.Tensor, list[torch.Tensor]], torch.Tensor]


@torch.no_grad()
def merge_layers(model: nn.Module, base: int, others: Sequence[int], combine: Combine) -> nn.Module:
    """Merge the weights of layers `others` into layer `base`, then delete `others` (LaCo's hook).

    `combine(param_name, base_tensor, other_tensors)` returns the new tensor for each base parameter.
    """
    layers = decoder_layers(model)
    idx = check_indices([base, *others], len(layers), "merge_layers")
    del idx
    with offloaded_weights_writable(layers[base], [layers[i] for i in others]):
        base_layer = layers[base]
        other_params = [dict(layers[i].named_parameters()) for i in others]
        for name, param in base_layer.named_parameters():
            new = combine(name, param.detach().clone(), [p[name].detach() for p in other_params])
            param.copy_(new.to(param.dtype))
    return remove_layers(model, others)


# ------------------------------------------------------------------------------- dispatched (offloaded) models


def offloaded_weights_writable(written: nn.Module, read: Sequence[nn.Module] = ()):
    """A context in which the offloaded weights (accelerate disk/CPU offload, bench.models.offload) of `written` may
    be changed in place and those of `read` read; the new weights of `written` are kept on exit. A module
    with nothing offloaded passes through unchanged."""
    from bench.models import offload

    stack = contextlib.ExitStack()
    stack.enter_context(offload.materialized([written], write_back=True))
    stack.enter_context(offload.materialized(read, write_back=False))
    return stack


def _offload_maps(modules: Sequence[nn.Module]) -> list[tuple[Any, Any]]:
    """(hook, weights map) of every offloaded module inside `modules`: where its weights are read from, which
    a write-back (`offloaded_weights_writable`) changes and a snapshot restores."""
    from bench.models import offload

    return [(h, h.weights_map) for m in offload.offloaded_modules(modules) for h in offload.offload_hooks(m)]


def _tensor_key(p: torch.Tensor) -> tuple:
    """What identifies a parameter's storage; an offloaded (meta) parameter has none, so its identity."""
    if p.is_meta:
        return ("meta", id(p))
    return (p.untyped_storage().data_ptr(), p.storage_offset(), tuple(p.shape))


# ----------------------------------------------------------------------------------------------- counting


def count_parameters(module: nn.Module) -> int:
    """Parameters with shared (tied) tensors counted once. Tensors without storage (the meta device: weights
    offloaded to disk, or a model built from its config alone) are told apart by identity, since they all
    report the same null address."""
    seen, total = set(), 0
    for p in module.parameters():
        key = _tensor_key(p)
        if key not in seen:
            seen.add(key)
            total += p.numel()
    return total


def layer_parameter_counts(model: nn.Module) -> list[int]:
    return [count_parameters(layer) for layer in decoder_layers(model)]


def embeddings_tied(model: nn.Module) -> bool:
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    inp = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    return out is not None and inp is not None and _tensor_key(out.weight) == _tensor_key(inp.weight)
