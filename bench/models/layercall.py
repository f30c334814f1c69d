"""Calling one decoder layer on its own, exactly as the model calls it, and modules that stand in for one.

Training a replacement for a block of layers means calling a layer (or a module in its place) outside the
model's forward. The model's forward builds the layer's inputs itself: the causal mask (or none, when SDPA
applies `is_causal`), the rotary embeddings, the position ids, per-layer-type masks (Gemma, Qwen2 sliding
windows). Rebuilding them by hand per family is where the official LLM-Streamline code went wrong (its
standalone layer saw no mask: non-causal training). Here they are *captured*: a forward pre-hook
(`with_kwargs=True`) records the exact positional and keyword arguments the model passes to position i
during a forward of the model on the batch, and `LayerCall` replays them. A module called through it
sees what the model would give it, whatever the family.

`MLPBlock` and `FFNBlock` are called like a decoder layer (they accept and ignore the attention inputs):
- `MLPBlock`: the model's own feed-forward path of one layer with its pre-norm and residual,
  h + mlp(norm(h)) (Gemma: + its post-feed-forward norm). Its state dict is a *stock decoder layer's*
  (the attention's parameters written as zeros), so a model holding one saves as a checkpoint stock
  `transformers` loads into a layer that computes the same function (zero attention output).
- `FFNBlock`: the paper's Linear(d, m*d) -> ReLU -> Linear(m*d, d), no norm, no residual, seeded random
  init. No stock layer computes it, so asking for its state dict (what `save_pretrained` does) raises
  ExportError instead of writing a checkpoint that loads but computes something else.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from bench.core.errors import ConfigError, ExportError
from bench.models import arch

# ------------------------------------------------------------------------------------------- capture


@dataclass
class LayerCall:
    """The arguments the model passed to one layer position, minus the hidden states."""

    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self, module: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        return arch.layer_output(module(hidden, *self.args, **self.kwargs))


@dataclass
class Captured:
    """What one forward recorded: inputs (and calls) at some positions, outputs at others."""

    inputs: dict[int, torch.Tensor] = field(default_factory=dict)
    calls: dict[int, LayerCall] = field(default_factory=dict)
    outputs: dict[int, torch.Tensor] = field(default_factory=dict)


def capture(model: nn.Module, input_ids: torch.Tensor, inputs: Sequence[int] = (), outputs: Sequence[int] = (),
            attention_mask: torch.Tensor | None = None) -> Captured:
    """Run `model` on `input_ids` (no grad, no cache) and record, for each position in `inputs`, the hidden
    state entering it and the exact arguments it was called with, and for each position in `outputs`, the
    hidden state leaving it. The forward stops after the last position needed (no LM head)."""
    layers = arch.decoder_layers(model)
    n = len(layers)
    wanted = [*inputs, *outputs]
    if not wanted or any(not 0 <= i < n for i in wanted):
        raise ConfigError(f"layer positions {wanted} are not inside a model with {n} layers",
                          f"use positions 0..{n - 1}")
    last = max(wanted)
    got = Captured()

    def pre(i):
        def hook(_module, args, kwargs):
            kwargs = dict(kwargs)
            if args:
                hidden, rest = args[0], tuple(args[1:])
            else:
                hidden, rest = kwargs.pop("hidden_states"), ()
            got.inputs[i] = hidden.detach()
            got.calls[i] = LayerCall(rest, kwargs)

        return hook

    def post(i):
        def hook(_module, _args, output):
            if i in outputs:
                got.outputs[i] = arch.layer_output(output).detach()
            if i == last:
                raise arch.StopForward

        return hook

    handles = [layers[i].register_forward_pre_hook(pre(i), with_kwargs=True) for i in set(inputs)]
    handles += [layers[i].register_forward_hook(post(i)) for i in set(outputs) | {last}]
    with arch.hooks(handles), torch.no_grad():
        arch.forward_until_stop(model, input_ids, attention_mask)
    return got


# ----------------------------------------------------------------------------------- replacement modules


def mlp_path(model: nn.Module) -> tuple[str, str, str | None]:
    """The decoder layer's feed-forward sub-block (pre-norm, mlp, post-norm), from its family record."""
    path = arch.family(model).ffn
    if path is None:
        model_type = getattr(model.config, "model_type", "")
        raise ConfigError(f"the mlp replacement does not know the feed-forward path of {model_type!r} layers",
                          f"use replacement=layer or ffn, or give {model_type!r} an ffn in bench.models.arch.FAMILIES")
    return path


class MLPBlock(nn.Module):
    """h + post(mlp(pre(h))) of one decoder layer (deep copies); saves as that stock layer, attention zeroed."""

    def __init__(self, layer: nn.Module, path: tuple[str, str, str | None]):
        super().__init__()
        self.path = path
        names = [p for p in path if p]
        for name in names:
            self.add_module(name, copy.deepcopy(layer.get_submodule(name)))
        own = {k for name in names for k in layer.get_submodule(name).state_dict(prefix=f"{name}.")}
        params = {k for k, _ in layer.named_parameters()}
        # the rest of the stock layer: parameters as zero-shaped placeholders, buffers kept as they are
        self._stock: dict[str, tuple[tuple[int, ...], torch.Tensor | None]] = {}
        for key, value in layer.state_dict().items():
            if key not in own:
                self._stock[key] = (tuple(value.shape), None if key in params else value.detach().clone())
        self.register_state_dict_post_hook(MLPBlock._add_stock_keys)
        self.register_load_state_dict_pre_hook(MLPBlock._drop_stock_keys)

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        pre, mlp, post = self.path
        out = getattr(self, mlp)(getattr(self, pre)(hidden_states))
        if post is not None:
            out = getattr(self, post)(out)
        return hidden_states + out

    @staticmethod
    def _add_stock_keys(module, state_dict, prefix, _metadata):
        ref = next(module.parameters())
        for key, (shape, buffer) in module._stock.items():
            state_dict[prefix + key] = (buffer if buffer is not None
                                        else torch.zeros(shape, dtype=ref.dtype, device=ref.device))

    @staticmethod
    def _drop_stock_keys(module, state_dict, prefix, *_):
        for key in module._stock:
            state_dict.pop(prefix + key, None)

    def extra_repr(self) -> str:
        return f"path={self.path}"


class FFNBlock(nn.Module):
    """Linear(d, m*d) -> ReLU -> Linear(m*d, d), hidden state to hidden state, seeded random init."""

    def __init__(self, hidden: int, mult: int = 4, seed: int = 0, dtype=torch.float32, device=None):
        super().__init__()
        self.fc1 = nn.Linear(hidden, mult * hidden, dtype=dtype, device=device)
        self.fc2 = nn.Linear(mult * hidden, hidden, dtype=dtype, device=device)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        with torch.no_grad():
            for lin in (self.fc1, self.fc2):  # nn.Linear's default init, from the seeded generator
                bound = 1.0 / lin.in_features ** 0.5
                lin.weight.copy_(torch.empty(lin.weight.shape).uniform_(-bound, bound, generator=gen))
                lin.bias.copy_(torch.empty(lin.bias.shape).uniform_(-bound, bound, generator=gen))

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(hidden_states)))

    def state_dict(self, *args, **kwargs):
        raise ExportError("a model with an LLM-Streamline FFN replacement has no stock transformers form: no "
                          "decoder layer computes a plain two-layer network without norm or residual",
                          "evaluate it in the harness, or prune with replacement=layer or mlp to export")


def hidden_size(model: nn.Module) -> int:
    emb = model.get_input_embeddings()
    return int(emb.weight.shape[1])
