"""Sub-layer surgery: dropping the attention or the feed-forward (MLP) sublayer of a decoder layer.

A decoder layer adds two sublayers to the residual stream: x -> x + A(LN_a(x)) -> ... + M(LN_m(.)).
Dropping a sublayer removes it *with its pre-norm* (and, in Gemma, its post-norm): the residual stream
passes through unchanged. Each family record (`SUBLAYERS`, keyed by `config.model_type`) names the
modules of both paths inside a decoder layer; unknown families fall back to a guess from the layer's
children (an attention, an MLP and exactly two norms), refused when the guess is ambiguous.

How a drop is made, the same way for every family: the dropped modules are replaced in place by stubs
that hold no parameters and compute nothing. A dropped norm becomes the identity; a dropped attention
returns a zero tensor (and no attention weights) without running a single matrix product, so the stock
layer's own `residual + output` leaves the residual unchanged bit for bit (x + 0 == x); likewise a
dropped MLP. The layer's weights of the dropped path are freed. A layer whose attention is dropped never
touches the KV cache: `bench.models.arch.renumber_layers` gives the surviving attentions the cache indices
0..A-1 (layers are marked with `attention_dropped`), so `DynamicCache.get_seq_length()` (cache layer 0)
reads a layer that exists, and the cache holds A layers of keys and values instead of L.

Export: the stubs write a *stock* state dict (`state_dict` post-hooks): a dropped attention's and MLP's
parameters as zeros, a dropped norm's original weights. A stock layer with those weights computes exactly
zero for the sublayer (all-zero projections, biases included), so `save_pretrained` writes a checkpoint
that stock `transformers` reloads with the same logits, exact but not faster (the zeros are computed).
A layer with both sublayers dropped is removed as a whole block (`drop_sublayers`), as block pruning does.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from bench.core.errors import SurgeryError
from bench.models import arch

log = logging.getLogger(__name__)

KINDS = ("attn", "mlp")


@dataclass(frozen=True)
class Sublayers:
    """Where a decoder layer keeps its two sublayers (module paths relative to the layer).

    `*_modules`: what computes the sublayer (replaced by stubs when dropped); `*_norms`: norms only that path
    uses (become the identity); `*_in`: the module whose input is the residual state x the sublayer reads;
    `*_out`: the module whose output is what the sublayer adds to the residual (its first element when a
    tuple). `*_widths`: for stubs standing in for a chain of linear maps (OPT's fc1 -> act -> fc2), the
    output width each stub returns (None: the shape of its input)."""

    attn_modules: tuple[str, ...]
    attn_norms: tuple[str, ...]
    attn_in: str
    attn_out: str
    mlp_modules: tuple[str, ...]
    mlp_norms: tuple[str, ...]
    mlp_in: str
    mlp_out: str
    mlp_widths: tuple[str | None, ...] = (None,)  # per mlp module: None, "zero" or "hidden"

    def modules(self, kind: str) -> tuple[str, ...]:
        return self.attn_modules if kind == "attn" else self.mlp_modules

    def norms(self, kind: str) -> tuple[str, ...]:
        return self.attn_norms if kind == "attn" else self.mlp_norms

    def reads(self, kind: str) -> str:
        return self.attn_in if kind == "attn" else self.mlp_in

    def adds(self, kind: str) -> str:
        return self.attn_out if kind == "attn" else self.mlp_out


_LLAMA = Sublayers(("self_attn",), ("input_layernorm",), "input_layernorm", "self_attn",
                   ("mlp",), ("post_attention_layernorm",), "post_attention_layernorm", "mlp")
_GEMMA = Sublayers(("self_attn",), ("input_layernorm", "post_attention_layernorm"), "input_layernorm",
                   "post_attention_layernorm", ("mlp",), ("pre_feedforward_layernorm", "post_feedforward_layernorm"),
                   "pre_feedforward_layernorm", "post_feedforward_layernorm")

SUBLAYERS: dict[str, Sublayers] = {
    "llama": _LLAMA, "mistral": _LLAMA, "qwen2": _LLAMA, "qwen3": _LLAMA, "phi3": _LLAMA,
    "gemma2": _GEMMA, "gemma3_text": _GEMMA, "gemma3": _GEMMA,
    # parallel residual, one norm shared by both paths: the norm stays (it is dropped with the whole block)
    "phi": Sublayers(("self_attn",), (), "input_layernorm", "self_attn", ("mlp",), (), "input_layernorm", "mlp"),
    "gpt2": Sublayers(("attn",), ("ln_1",), "ln_1", "attn", ("mlp",), ("ln_2",), "ln_2", "mlp"),
    # the MLP is inline in the layer (fc1 -> activation -> fc2): fc1's stub returns no features, fc2's zeros
    "opt": Sublayers(("self_attn",), ("self_attn_layer_norm",), "self_attn_layer_norm", "self_attn",
                     ("fc1", "fc2"), ("final_layer_norm",), "final_layer_norm", "fc2", ("zero", "hidden")),
    "gpt_neox": Sublayers(("attention",), ("input_layernorm",), "input_layernorm", "attention",
                          ("mlp",), ("post_attention_layernorm",), "post_attention_layernorm", "mlp"),
}

def _is_norm(module: nn.Module) -> bool:
    return "norm" in type(module).__name__.lower()


def _generic_sublayers(layer: nn.Module) -> Sublayers:
    """Guess the two paths of an unknown family's layer: the child named like an attention, the child named
    like an MLP, and exactly two norms (the first the attention's pre-norm, the second the MLP's)."""
    children = dict(layer.named_children())
    norms = [n for n, m in children.items() if _is_norm(m)]
    attn = [n for n in children if ("attn" in n.lower() or "attention" in n.lower()) and n not in norms]
    mlp = [n for n in children if n.lower() in ("mlp", "ffn", "feed_forward", "feedforward")]
    if len(attn) != 1 or len(mlp) != 1 or len(norms) != 2:
        raise SurgeryError(f"cannot tell the attention and MLP sublayers of {type(layer).__name__} apart "
                           f"(attention-like children {attn}, MLP-like {mlp}, norms {norms})",
                           "add the family to bench.models.sublayer.SUBLAYERS")
    return Sublayers((attn[0],), (norms[0],), norms[0], attn[0], (mlp[0],), (norms[1],), norms[1], mlp[0])


def sublayers(model: nn.Module) -> Sublayers:
    """The family's sublayer record (or the generic guess from its first decoder layer)."""
    rec = SUBLAYERS.get(getattr(model.config, "model_type", ""))
    layer = arch.decoder_layers(model)[0]
    if rec is not None and all(_has(layer, p) for p in rec.attn_modules + rec.mlp_modules):
        return rec
    return _generic_sublayers(layer)


def _has(layer: nn.Module, path: str) -> bool:
    try:
        layer.get_submodule(path)
        return True
    except AttributeError:
        return False


# ------------------------------------------------------------------------------------------------ stubs


class _Stub(nn.Module):
    """Base of the stubs: no parameters; `state_dict` writes the stock keys of the module it replaced."""

    def __init__(self, replaced: nn.Module, keep_values: bool):
        super().__init__()
        # key -> tensor to export: the original values (norms), or a (shape, dtype) to export as zeros
        self._stock: dict[str, torch.Tensor | tuple[tuple[int, ...], torch.dtype]] = {}
        params = {k for k, _ in replaced.named_parameters()}
        for key, value in replaced.state_dict().items():
            if keep_values or key not in params:
                self._stock[key] = value.detach().clone()
            else:
                self._stock[key] = (tuple(value.shape), value.dtype)
        self.register_state_dict_post_hook(_Stub._write_stock)
        self.register_load_state_dict_pre_hook(_Stub._drop_stock)

    @staticmethod
    def _write_stock(module, state_dict, prefix, _metadata):
        for key, value in module._stock.items():
            state_dict[prefix + key] = value if isinstance(value, torch.Tensor) else torch.zeros(value[0], dtype=value[1])

    @staticmethod
    def _drop_stock(module, state_dict, prefix, *_):
        for key in module._stock:
            state_dict.pop(prefix + key, None)


class DroppedNorm(_Stub):
    """A dropped sublayer's norm: the identity (exports the original weights)."""

    def __init__(self, replaced: nn.Module):
        super().__init__(replaced, keep_values=True)

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states


class DroppedAttention(_Stub):
    """A dropped attention: returns zeros shaped like its input and no attention weights; touches no cache."""

    def __init__(self, replaced: nn.Module):
        super().__init__(replaced, keep_values=False)

    def forward(self, *args, **kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        return torch.zeros_like(hidden), None


class DroppedLinear(_Stub):
    """A dropped MLP (or one of its linear maps): zeros, `width` features wide (None: as its input)."""

    def __init__(self, replaced: nn.Module, width: int | None):
        super().__init__(replaced, keep_values=False)
        self.width = width

    def forward(self, hidden_states, *args, **kwargs):
        if self.width is None:
            return torch.zeros_like(hidden_states)
        return hidden_states.new_zeros(*hidden_states.shape[:-1], self.width)

    def extra_repr(self) -> str:
        return f"width={self.width}"


def is_dropped(module: nn.Module) -> bool:
    return isinstance(module, _Stub)


# ---------------------------------------------------------------------------------------------- surgery


def _set(layer: nn.Module, path: str, module: nn.Module) -> nn.Module:
    parent_path, _, attr = path.rpartition(".")
    parent = layer.get_submodule(parent_path) if parent_path else layer
    old = getattr(parent, attr)
    setattr(parent, attr, module)
    return old


def _stubs(layer: nn.Module, rec: Sublayers, kind: str) -> dict[str, nn.Module]:
    """The stub for every module of one sublayer path of `layer`."""
    out: dict[str, nn.Module] = {}
    for path in rec.norms(kind):
        out[path] = DroppedNorm(layer.get_submodule(path))
    if kind == "attn":
        for path in rec.attn_modules:
            out[path] = DroppedAttention(layer.get_submodule(path))
    else:
        for path, width in zip(rec.mlp_modules, rec.mlp_widths, strict=True):
            mod = layer.get_submodule(path)
            w = None if width is None else 0 if width == "zero" else int(mod.weight.shape[0])
            out[path] = DroppedLinear(mod, w)
    return out


def skip_sublayer(layer: nn.Module, rec: Sublayers, kind: str) -> dict[str, nn.Module]:
    """Replace one sublayer path of `layer` by stubs (in place); returns the replaced modules by path."""
    if kind not in KINDS:
        raise SurgeryError(f"unknown sublayer {kind!r}", "use attn or mlp")
    if any(is_dropped(layer.get_submodule(p)) for p in rec.modules(kind)):
        return {}
    old = {path: _set(layer, path, stub) for path, stub in _stubs(layer, rec, kind).items()}
    if kind == "attn":
        layer.attention_dropped = True
    return old


def restore_sublayer(layer: nn.Module, old: dict[str, nn.Module]) -> None:
    for path, module in old.items():
        _set(layer, path, module)
    if not any(is_dropped(m) and isinstance(m, DroppedAttention) for m in layer.modules()):
        layer.__dict__.pop("attention_dropped", None)


def dropped(model: nn.Module) -> dict[str, list[int]]:
    """Which sublayers of the current model are dropped, by current layer index."""
    rec = sublayers(model)
    out: dict[str, list[int]] = {k: [] for k in KINDS}
    for i, layer in enumerate(arch.decoder_layers(model)):
        for kind in KINDS:
            if any(is_dropped(layer.get_submodule(p)) for p in rec.modules(kind)):
                out[kind].append(i)
    return out


def drop_sublayers(model: nn.Module, attn: Sequence[int] = (), mlp: Sequence[int] = ()) -> nn.Module:
    """Drop the attention sublayers of layers `attn` and the MLP sublayers of layers `mlp` (in place, indices
    in the current model); a layer in both is removed as a whole block. KV-cache indices are compacted."""
    layers = arch.decoder_layers(model)
    n = len(layers)
    attn, mlp = arch.check_indices(attn, n, "attention", "attention"), arch.check_indices(mlp, n, "MLP", "MLP")
    blocks = sorted(set(attn) & set(mlp))
    rec = sublayers(model)
    for kind, idx in (("attn", attn), ("mlp", mlp)):
        for i in idx:
            if i not in blocks:
                skip_sublayer(layers[i], rec, kind)
    if blocks:
        arch.remove_layers(model, blocks)  # renumbers (and compacts the cache indices)
    else:
        arch.renumber_layers(model)
    _install_cache_types(model)
    log.debug("dropped attention %s, MLP %s (blocks %s)", attn, mlp, blocks)
    return model


# ------------------------------------------------------------------------------------------ the KV cache


def _cache_layer_types(stack: nn.Module, config) -> list[tuple[str, dict]] | None:
    """(type, kwargs) of each KV-cache layer for the compacted indices: the surviving attentions' own types
    in order, then "dummy" (no storage) layers up to the layer count; None where no change is needed."""
    from transformers.cache_utils import get_layer_types_and_kwargs

    layers = [m for m in stack.children() if isinstance(m, nn.ModuleList)]
    decoder = max(layers, key=len) if layers else None
    if decoder is None or not any(getattr(layer, "attention_dropped", False) for layer in decoder):
        return None
    types, kwargs = get_layer_types_and_kwargs(config.get_text_config(decoder=True))
    if len(types) != len(decoder):
        return None
    alive = [i for i, layer in enumerate(decoder) if not getattr(layer, "attention_dropped", False)]
    if not alive:  # no attention left: nothing reads the cache (positions only feed attention)
        return None
    wanted = [(types[i], kwargs[i]) for i in alive] + [("dummy", {})] * (len(decoder) - len(alive))
    return None if [t for t, _ in wanted[:len(alive)]] == types[:len(alive)] else wanted


def _retype_cache_hook(module, args, kwargs):
    """Forward pre-hook of the decoder stack: give a fresh DynamicCache the layer types of the compacted
    indices (hybrid sliding/full families, where dropping an attention shifts the pattern)."""
    from transformers.cache_utils import DYNAMIC_LAYER_TYPE_MAPPING, DynamicCache

    config = module.config
    key = "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"
    cache = kwargs.get(key, kwargs.get("past_key_values"))
    if cache is None:
        use = kwargs.get("use_cache")
        if not (config.use_cache if use is None else use):
            return None
        cache = DynamicCache(config=config)
        kwargs.pop("past_key_values", None)
        kwargs[key] = cache
    if type(cache) is not DynamicCache or cache.get_seq_length() > 0:
        return args, kwargs
    wanted = _cache_layer_types(module, config)
    if wanted is not None:
        cache.layers = [DYNAMIC_LAYER_TYPE_MAPPING[t](**kw) for t, kw in wanted]
    return args, kwargs


def _install_cache_types(model: nn.Module) -> None:
    """Hook the decoder stack (the module holding the layer list) once, where the cache types must change."""
    path = arch.family(model).layers.rpartition(".")[0]
    stack = model.get_submodule(path) if path else model
    if _cache_layer_types(stack, model.config) is None or getattr(stack, "_retypes_cache", False):
        return
    stack.register_forward_pre_hook(_retype_cache_hook, with_kwargs=True)
    stack._retypes_cache = True


@contextlib.contextmanager
def skipped(model: nn.Module, units: Sequence[tuple[str, int]]) -> Iterator[None]:
    """Temporarily drop the sublayers `units` ((kind, current index) pairs), for a search's trial forwards
    (no cache: indices are not renumbered). Everything comes back on exit, also after an error."""
    layers = arch.decoder_layers(model)
    rec = sublayers(model)
    undo: list[tuple[nn.Module, dict[str, nn.Module]]] = []
    try:
        for kind, i in units:
            undo.append((layers[i], skip_sublayer(layers[i], rec, kind)))
        yield
    finally:
        for layer, old in reversed(undo):
            restore_sublayer(layer, old)


# --------------------------------------------------------------------------------------------- counting


def unit_parameters(model: nn.Module) -> dict[str, list[int]]:
    """Parameters of each layer's attention path and MLP path (modules and the norms dropped with them)."""
    rec = sublayers(model)
    out: dict[str, list[int]] = {k: [] for k in KINDS}
    for layer in arch.decoder_layers(model):
        for kind in KINDS:
            mods = [layer.get_submodule(p) for p in rec.modules(kind) + rec.norms(kind)]
            out[kind].append(sum(arch.count_parameters(m) for m in mods))
    return out


def kv_cache_layers(model: nn.Module) -> int:
    """How many decoder layers keep their attention (each holds one KV-cache layer)."""
    return sum(1 for layer in arch.decoder_layers(model) if not getattr(layer, "attention_dropped", False))
