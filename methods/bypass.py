"""Calibration loss with decoder layers bypassed, for the searches that remove one block at a time (SLEB's
greedy rounds, Shortened-LLaMA's PPL criterion).

A layer is bypassed by replacing its `forward` (an instance attribute, removed afterwards) with the identity
on the hidden state, so every candidate runs through the model's own forward: embeddings, masks, rotary
tables, the final norm, the LM head and any logit soft-capping stay the family's own code.

Prefix reuse (`reuse=True`): when the candidate is layer c, the states entering every layer before c do not
change, so one partial forward per batch records the state entering each candidate (stopping at the last
candidate). A candidate then costs only its suffix: the layers before it are replaced by stubs that return
the recorded state (the alive layer just before c hands over the state entering c; earlier ones pass their
input through untouched), c is the identity, and the layers after c run normally. Without reuse every
candidate runs the whole model. Both compute the suffix from bitwise the same prefix state, so they give
the same losses; the reuse saves the prefix layers (about half of the layer compute; the LM head and the
loss still run once per candidate).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F

from bench.models import arch


@contextlib.contextmanager
def patched(layers, forwards: dict[int, Callable]):
    """Replace `layers[i].forward` by `forwards[i]` for the duration; restored even on error."""
    try:
        for i, fn in forwards.items():
            layers[i].forward = fn
        yield
    finally:
        for i in forwards:
            layers[i].__dict__.pop("forward", None)


def _identity(tuple_out: bool) -> Callable:
    def forward(hidden_states, *args, **kwargs):
        return (hidden_states,) if tuple_out else hidden_states

    return forward


def _constant(state: torch.Tensor, tuple_out: bool) -> Callable:
    def forward(hidden_states, *args, **kwargs):
        return (state,) if tuple_out else state

    return forward


def summed_nll(model, ids: torch.Tensor, mask: torch.Tensor, chunk: int = 64) -> tuple[float, int]:
    """Summed next-token NLL (fp32) over the non-padding targets of one batch, and their count."""
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    keep = mask[:, 1:].bool() & mask[:, :-1].bool()
    total, n = 0.0, ids.shape[1] - 1
    for b in range(ids.shape[0]):  # chunks of contiguous rows, upcast one at a time: ~3x faster on CPU than one
        for lo in range(0, n, chunk):  # fp32 copy of every logit, and the same sum
            hi = min(lo + chunk, n)
            sel = keep[b, lo:hi]
            rows = logits[b, lo:hi][sel].float()
            total += float(F.cross_entropy(rows, ids[b, lo + 1:hi + 1][sel], reduction="sum"))
    return total, int(keep.sum())


def _prefix_states(model, ids, mask, alive: Sequence[int], stop_at: int, base: dict[int, Callable]):
    """The states entering each alive layer up to `stop_at` (inclusive); the forward stops there."""
    layers = arch.decoder_layers(model)
    states: dict[int, torch.Tensor] = {}

    def pre(i):
        def hook(_module, args, kwargs):
            states[i] = args[0] if args else kwargs["hidden_states"]
            if i == stop_at:
                raise arch.StopForward

        return hook

    handles = [layers[i].register_forward_pre_hook(pre(i), with_kwargs=True) for i in alive if i <= stop_at]
    with arch.hooks(handles), patched(layers, base):
        arch.forward_until_stop(model, ids, mask)
    return states


def _returns_tuple(model, ids, mask) -> bool:
    layers = arch.decoder_layers(model)
    kind = {}

    def post(_module, _args, output):
        kind["tuple"] = isinstance(output, (tuple, list))
        raise arch.StopForward

    with arch.hooks([layers[0].register_forward_hook(post)]):
        arch.forward_until_stop(model, ids[:, :2], mask[:, :2])
    return kind["tuple"]


@torch.inference_mode()
def bypass_losses(model, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], removed: Iterable[int],
                  candidates: Sequence[int], reuse: bool = True) -> tuple[dict[int, float], int]:
    """For each candidate layer c: the summed calibration NLL of the model with the `removed` layers and c
    bypassed. Returns ({c: summed NLL}, number of scored tokens)."""
    layers = arch.decoder_layers(model)
    removed = set(removed)
    alive = [i for i in range(len(layers)) if i not in removed]
    candidates = list(candidates)
    if not candidates:
        return {}, 0
    if set(candidates) - set(alive):
        raise ValueError(f"candidates {sorted(set(candidates) - set(alive))} are already removed")
    totals = {c: 0.0 for c in candidates}
    n_tokens = 0
    tuple_out = None
    for ids, mask in batches:
        if tuple_out is None:
            tuple_out = _returns_tuple(model, ids, mask)
        identity = _identity(tuple_out)
        base = {i: identity for i in removed}
        if reuse:
            states = _prefix_states(model, ids, mask, alive, max(candidates), base)
        count = 0
        for c in candidates:
            stubs = dict(base)
            stubs[c] = identity
            if reuse:
                before = [i for i in alive if i < c]
                for i in before:
                    stubs[i] = identity
                if before:
                    stubs[before[-1]] = _constant(states[c], tuple_out)
            with patched(layers, stubs):
                nll, count = summed_nll(model, ids, mask)
            totals[c] += nll
        n_tokens += count
    return totals, n_tokens
