"""LLM-Streamline (Chen et al., arXiv 2403.19135): replace the most redundant contiguous block.

Selection (paper and official code agree): s(l) = mean over tokens of cos(h_l, h_{l+n}) for a window of n
layers (h_i enters layer i); the window with the highest s is pruned, one shot.

Budget convention, for a budget of k layers:
- `none`: the window is k layers, l..l+k-1, deleted ("LLM-Streamline (None)" in third-party tables).
- `layer` (default, as the official code): the window is k+1 layers, l..l+k, scored by cos(h_l, h_{l+k+1});
  layers l+1..l+k are deleted and layer l is kept and trained to map h_l to the dense h_{l+k+1}. Net k
  layers removed; the parameters removed are those of layers l+1..l+k.
- `mlp`: the same k+1-layer window is replaced by one feed-forward block of the model's own MLP type
  (layer l's pre-MLP norm and MLP with the residual, h + mlp(norm(h)), initialised from layer l).
- `ffn`: the same window is replaced by the paper's Linear(d, 4d) -> ReLU -> Linear(4d, d) (no norm, no
  residual, seeded random init), hidden state to hidden state.
So every trained variant leaves L - k blocks, and `params_removed` = the window's parameters minus the
module's (the module counts), as in the paper's "9 layers replaced by an FFN = 25 %" arithmetic.

Objectives (only the module trains, everything else frozen). The default is `lm`, not the official `mse`;
the measurements behind that choice (every objective's bits per byte against training tokens, paired with
dropping the block) are on the study page, reports/streamline-study.md ("Answers", "Defaults"). Pass
`objective=mse` for the paper's loss.
- `mse` (the paper's and the official code's loss): MSE between the module's output on h_l and the dense model's
  h_{l+k+1} (the raw residual stream, not the final-normed one). Teacher states are computed batch by
  batch from the dense model (the kept window layers re-installed for one no-grad forward that stops
  after the window), never stored for the training set. The module is called with the exact mask /
  rotary / position arguments the model passes to position l (`bench.models.layercall`), so it trains causally.
  `mse_skip_first=n` leaves the first n positions of each window out of the loss: the raw residual stream
  carries massive activations at the attention-sink position, which dominate the official loss (the study
  page measures by how much).
- `lm` (default): next-token loss of the pruned model (the official code's LLM-loss mode).
- `kd`: knowledge distillation from the dense model's logits: T^2 x KL(softmax(z_dense / T) || softmax(z_pruned
  / T)) per token, averaged over all positions (`kd_temperature` T, default 1: the KL the fidelity metric
  reports). The dense logits come from the same batch, the dense window re-installed for one no-grad
  forward (`dense_view`), so nothing is stored for the training set.

Schedule (`schedule`): the default `streamline_official` is the learning rate the official MSE loop actually
runs (`bench.train.lr_lambda`): 8 % warm-up, then 2e-4 decaying only to about 1.95e-4, because its cosine's
horizon is counted in micro-batches but stepped per optimizer step. `cosine` decays to `min_lr` over the run
and `constant` holds `lr`. The paper names no schedule.

Export: `layer` is a stock decoder layer; `mlp` saves as a stock decoder layer with its attention zeroed
(same function; it still computes attention, so the exported model is slower than the in-harness block,
which is what latency reports measure); `ffn` has no stock form and refuses to export (ExportError).
"""

from __future__ import annotations

import contextlib
import copy
import math
import weakref
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from bench.core.errors import ConfigError
from bench.train import TrainParams, flops_per_token, lm_loss, matmul_params, train
from methods import register
from methods.base import Budget, PrunePlan, Pruner, Search, calib_provenance
from methods.ops import Replace, to_dict
from methods.selection import best_start, block_influence, window_scores

_NOTES = {
    "layer": "LLM-Streamline `layer`: the window is layers {l}..{last} ({w} layers); layer {l} is kept and trained "
             "to map h_{l} to the dense h_{end}, layers {l1}..{last} are deleted (net {k} layers).",
    "mlp": "LLM-Streamline `mlp`: the window {l}..{last} ({w} layers) is replaced by one feed-forward block (layer "
           "{l}'s pre-MLP norm and MLP with its residual, trained); net parameters removed = the window's minus "
           "the block's. The checkpoint stores the block as a stock decoder layer with its attention zeroed "
           "(every parameter outside the feed-forward path, the attention and its norm, written as zeros), "
           "which computes the same function but still runs attention: the exported model is slower than the in-harness block, whose "
           "latency is what the benchmark reports.",
    "ffn": "LLM-Streamline `ffn`: the window {l}..{last} ({w} layers) is replaced by Linear(d, {m}d) -> ReLU -> "
           "Linear({m}d, d) (seeded random init, trained); net parameters removed = the window's minus the "
           "network's. It has no stock transformers form and cannot be exported.",
}


@dataclass
class _Teacher:
    """The dense window, kept between `apply` and `heal` for the MSE targets."""

    start: int
    layers: list[nn.Module]
    per_layer: dict[str, list] = field(default_factory=dict)  # the dense config's per-layer lists


@register
class Streamline(Pruner):
    name = "streamline"
    title = "LLM-Streamline (contiguous cosine window)"
    paper = "2403.19135"
    needs_calibration = True
    order = 20
    may_train = True  # `trains` says per instance

    @dataclass(frozen=True)
    class Params(TrainParams):
        replacement: Literal["layer", "mlp", "ffn", "none"] = "layer"
        objective: Literal["mse", "lm", "kd"] = "lm"  # the study's evidence; mse is the paper's
        ffn_mult: int = 4  # ffn width, in multiples of the hidden size
        mse_skip_first: int = 0  # leading positions of each window left out of the MSE (0: the official loss)
        kd_temperature: float = 1.0  # softmax temperature of the kd objective
        schedule: Literal["cosine", "constant", "streamline_official"] = "streamline_official"

        def __post_init__(self):
            super().__post_init__()
            if not 0 <= self.mse_skip_first < self.train_seq_len or self.ffn_mult < 1:
                raise ValueError("need 0 <= mse_skip_first < train_seq_len and ffn_mult >= 1")
            if self.objective not in ("mse", "lm", "kd") or not self.kd_temperature > 0:
                raise ValueError("objective must be mse, lm or kd, and kd_temperature > 0")

    def __init__(self, params=None):
        super().__init__(params)
        self._teachers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @property
    def trains(self) -> bool:  # per instance: `none` trains nothing (and needs no training data) unless LoRA
        return self.params.replacement != "none" or self.lora is not None

    @property
    def exportable(self) -> bool:
        """Whether the pruned model has a stock transformers form (`ffn` has none)."""
        return self.params.replacement != "ffn"

    # ------------------------------------------------------------------------------------------ plan

    def plan(self, model, calib, budget: Budget) -> PrunePlan:
        from bench.models import arch

        p = self.params
        with Search(model, seconds=None) as search:  # the meter spans a capture of the statistics, if any
            per_layer = arch.layer_parameter_counts(model)
            k = budget.layers_for(model)
            stats = self.require_calib(calib).stats
            with Search(seconds="select_seconds") as select:
                window = k if p.replacement == "none" else k + 1
                similarity = window_scores(stats.cos_tokens, window)
                start = best_start(similarity, highest=True)
        scores = {"window_cosine": similarity, "window": window, "per_layer": block_influence(stats.cos_tokens)}
        cost = {**select.cost(capture_seconds=stats.seconds), **search.cost()}
        if p.replacement == "none":
            return self.removal_plan(model, budget, list(range(start, start + k)), scores, calib, cost)
        stop = start + window
        module_params = self._module_params(model, start)
        note = _NOTES[p.replacement].format(l=start, l1=start + 1, last=stop - 1, end=stop, w=window, k=k,
                                            m=p.ffn_mult)
        return PrunePlan(
            method=self.name, n_layers=len(per_layer),
            ops=[to_dict(Replace(start=start, stop=stop, module=f"streamline-{p.replacement}"))],
            removed_original=list(range(start, stop)), budget=budget.to_dict(), layers_removed=k,
            params_total=arch.count_parameters(model), params_removed=sum(per_layer[start:stop]) - module_params,
            scores={**scores, "module_params": module_params}, params=self.params_dict(),
            calib=calib_provenance(calib), cost=cost, notes=[note])

    def _module_params(self, model, start: int) -> int:
        from bench.models import arch
        from bench.models.layercall import hidden_size, mlp_path

        layer = arch.decoder_layers(model)[start]
        if self.params.replacement == "layer":
            return arch.count_parameters(layer)
        if self.params.replacement == "mlp":
            return sum(arch.count_parameters(layer.get_submodule(n)) for n in mlp_path(model) if n)
        d, m = hidden_size(model), self.params.ffn_mult
        return 2 * m * d * d + m * d + d

    # ----------------------------------------------------------------------------------------- apply

    def apply(self, model, plan: PrunePlan):
        from bench.models import arch
        from bench.models.layercall import FFNBlock, MLPBlock, hidden_size, mlp_path
        from methods.surgery import apply_ops

        replace = [op for op in plan.ops if op["op"] == "replace"]
        if not replace:
            return apply_ops(model, plan.ops)
        op = replace[0]
        kind = op["module"].removeprefix("streamline-")
        start, stop = op["start"], op["stop"]
        layers = arch.decoder_layers(model)
        first = layers[start]
        if kind == "layer":
            module = first
        elif kind == "mlp":
            module = MLPBlock(first, mlp_path(model))
        elif kind == "ffn":
            ref = next(model.parameters())
            module = FFNBlock(hidden_size(model), plan.params.get("ffn_mult", 4), plan.params.get("train_seed", 0),
                              dtype=ref.dtype, device=ref.device)
        else:
            raise ConfigError(f"unknown LLM-Streamline replacement {kind!r} in the plan", "use layer, mlp or ffn")
        if self.params.objective in ("mse", "kd"):
            fam = arch.family(model)
            per_layer = {key: list(getattr(model.config, key)) for key in fam.per_layer_keys
                         if isinstance(getattr(model.config, key, None), (list, tuple))}
            window = [copy.deepcopy(first) if kind == "layer" else first, *layers[start + 1:stop]]
            for mod in window:
                mod.requires_grad_(False)
            self._teachers[model] = _Teacher(start, window, per_layer)
        from bench.models.offload import pinned

        # a dispatched model: the trained module is loaded into memory for good (one layer); the rest streams
        return apply_ops(model, plan.ops, {op["module"]: pinned(module)})

    # ------------------------------------------------------------------------------------------ heal

    def heal(self, model, plan: PrunePlan, data):
        from bench.models import arch
        from bench.models.layercall import capture

        p = self.params
        replace = [op for op in plan.ops if op["op"] == "replace"]
        if not replace:
            return None
        if data is None:
            raise ConfigError(f"LLM-Streamline replacement={p.replacement} trains its replacement module and needs "
                              "training data", "pass --train-data c4 (or wikipedia, or a text file)")
        start = replace[0]["start"]
        layers = arch.decoder_layers(model)
        module = layers[start]
        device = next(model.parameters()).device
        n_batches = math.ceil(p.train_samples / p.train_batch)
        batches = data.batches(p.train_samples, p.train_seq_len, p.train_batch, p.train_seed, device)
        teacher = self._teachers.pop(model, None) if p.objective in ("mse", "kd") else None
        if p.objective in ("mse", "kd") and teacher is None:
            raise ConfigError(f"the {p.objective} objective needs the dense window that `apply` keeps",
                              "call apply and heal on the same pruner and model")
        if p.objective == "mse":
            last, skip = start + len(teacher.layers) - 1, p.mse_skip_first

            def loss_fn(ids):
                with dense_view(model, teacher):
                    got = capture(model, ids, inputs=[start], outputs=[last])
                out = got.calls[start](module, got.inputs[start])
                return F.mse_loss(out[:, skip:].float(), got.outputs[last][:, skip:].float())

            frozen = matmul_params([*layers[:start], *teacher.layers])
            path = matmul_params([module])
        elif p.objective == "kd":
            head = model.get_output_embeddings()

            def loss_fn(ids):
                with dense_view(model, teacher), torch.no_grad():
                    dense_logits = model(input_ids=ids, use_cache=False).logits
                return kd_loss(model(input_ids=ids, use_cache=False).logits, dense_logits, p.kd_temperature)

            frozen = matmul_params([*layers, *teacher.layers[1:], head]) + matmul_params(layers[:start])
            path = matmul_params([*layers[start:], head])
        else:
            def loss_fn(ids):
                return lm_loss(model, ids)

            frozen = matmul_params(layers[:start])
            path = matmul_params([*layers[start:], model.get_output_embeddings()])
        what = f"streamline {p.replacement} ({p.objective})"
        cost = train(model, list(module.parameters()), loss_fn, batches, n_batches, p,
                     flops_token=flops_per_token(frozen, path), what=what)
        cost["objective"] = p.objective
        cost["data"] = data.describe()
        return cost


def kd_loss(student_logits, teacher_logits, temperature: float = 1.0):
    """T^2 x KL(softmax(teacher / T) || softmax(student / T)), summed over the vocabulary and averaged over
    positions (fp32)."""
    t = temperature
    logq = F.log_softmax(teacher_logits.float() / t, dim=-1)
    logp = F.log_softmax(student_logits.float() / t, dim=-1)
    kl = (logq.exp() * (logq - logp)).sum(-1)
    return kl.mean() * t * t


@contextlib.contextmanager
def dense_view(model, teacher: _Teacher):
    """Temporarily put the dense window back in place of the module at `teacher.start` (config included)."""
    from bench.models import arch

    pruned = list(arch.decoder_layers(model))
    dense = pruned[:teacher.start] + teacher.layers + pruned[teacher.start + 1:]
    with arch.layers_swapped(model, dense, teacher.per_layer):
        yield
