"""Shortened-LLaMA's Taylor+ criterion (Kim et al., arXiv 2402.02834): first-order Taylor importance of each
block's weights on calibration data; prune the least important blocks, one shot, with the "+" heuristic.

Score of block b = sum over its weight tensors W of sum_elements |W * G_W|, where G_W is the gradient of the
calibration LM loss summed over batches (the salience W * dL/dW is accumulated over batches before the
absolute value, as the official `anal_block_sensitivity_taylor.py` does: `norm_power=1`,
`weight_reduction=sum`, `block_reduction=sum`). Tensors named `weight` only (norm weights included, biases
not, as the official `"weight" in name` filter); the embeddings and the LM head get no score and no
gradient. The ascending order is the pruning order; the "+" heuristic keeps blocks 0-3 and the last two
(`keep_first=4`, `keep_last=2`; 0 and 0 turn it off).
Official calibration: 10 BookCorpus samples of 128 tokens in one batch of 10; the loss is each batch's mean
token NLL (HF `labels=`). Deviation: the run's calibration spec (bench.data.calibration) and its batch size.
Numerics: gradients in the model's dtype; salience accumulated in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from methods import register
from methods.base import Search
from methods.plus import PlusCriterion, PlusParams


def taylor_scores(model, batches) -> tuple[list[float], int]:
    """Per-layer sum of |W * sum_batches dL/dW| over the layer's `weight` tensors, and the tokens used."""
    from bench.models import arch, offload

    if offload.is_dispatched(model):
        return _dispatched_scores(model, batches)
    layers = arch.decoder_layers(model)
    weights = [[p for name, p in layer.named_parameters() if name.rsplit(".", 1)[-1] == "weight"]
               for layer in layers]
    flags = {p: p.requires_grad for p in model.parameters()}
    salience = [[torch.zeros_like(w, dtype=torch.float32) for w in ws] for ws in weights]
    tokens = 0
    try:
        for p in flags:
            p.requires_grad_(False)
        for ws in weights:
            for w in ws:
                w.requires_grad_(True)
                w.grad = None
        for ids, mask in batches:
            with torch.enable_grad():
                loss = model(input_ids=ids, attention_mask=mask, labels=ids, use_cache=False).loss
                loss.backward()
            for ws, sal in zip(weights, salience):
                for w, s in zip(ws, sal):
                    if w.grad is not None:
                        s += (w.detach().float() * w.grad.float())
                        w.grad = None
            tokens += int(mask.sum())
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)
            p.grad = None
    return [float(sum(s.abs().sum() for s in sal)) for sal in salience], tokens



def _dispatched_scores(model, batches) -> tuple[list[float], int]:
    """`taylor_scores` on a model whose weights are partly offloaded (bench.models.offload): an offloaded weight is a
    fresh tensor on each forward, so its gradient is read from the tensor the forward used
    (`offload.weights_seen`); the same sums, in the same order, as in memory."""
    from bench.models import arch, offload

    layers = arch.decoder_layers(model)
    order = [[n for n, _ in layer.named_parameters() if n.rsplit(".", 1)[-1] == "weight"] for layer in layers]
    where = {id(m): (i, name) for i, layer in enumerate(layers) for name, m in layer.named_modules()}
    salience: list[dict[str, torch.Tensor]] = [{} for _ in layers]
    flags = {p: p.requires_grad for p in model.parameters()}
    tokens = 0

    def add(i: int, name: str, w: torch.Tensor) -> None:
        if w.grad is not None:
            term = w.detach().float() * w.grad.float()
            salience[i][name] = salience[i][name] + term if name in salience[i] else term
            w.grad = None

    try:
        for p in flags:
            p.requires_grad_(False)
        for i, layer in enumerate(layers):
            for name, p in layer.named_parameters():  # offloaded: the loaded copies inherit the flag
                if name in order[i]:
                    p.requires_grad_(True)
                    p.grad = None
        with offload.weights_seen(layers) as seen:
            for ids, mask in batches:
                seen.clear()
                with torch.enable_grad():
                    loss = model(input_ids=ids, attention_mask=mask, labels=ids, use_cache=False).loss
                    loss.backward()
                for module, params in seen:
                    i, prefix = where[id(module)]
                    for name, w in params.items():
                        full = f"{prefix}.{name}" if prefix else name
                        if full in order[i]:
                            add(i, full, w)
                seen.clear()
                for i, layer in enumerate(layers):  # resident weights keep their own gradients
                    for name, w in layer.named_parameters():
                        if name in order[i] and not w.is_meta:
                            add(i, name, w)
                tokens += int(mask.sum())
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)
            p.grad = None
    return [float(sum(sal[n].abs().sum() for n in names if n in sal)) for sal, names in zip(salience, order,
                                                                                            strict=True)], tokens

@register
class Taylor(PlusCriterion):
    name = "taylor"
    title = "Shortened-LLaMA Taylor+ (first-order weight importance)"
    paper = "2402.02834"
    needs_calibration = True
    order = 56
    score_name, criterion, ranked_by = "taylor", "Taylor+", "block importance"

    @dataclass(frozen=True)
    class Params(PlusParams):
        pass

    def layer_scores(self, model, calib, search: Search) -> list[float]:
        scores, tokens = taylor_scores(model, calib.batches())
        search.add(tokens=tokens)
        return scores
