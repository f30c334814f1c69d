"""ReplaceMe (Shopkhoev et al., arXiv 2505.02819), training-free: replace a contiguous block of layers by a
linear map folded into the preceding layer's MLP output projection.

Selection (paper; official `distance.py` + `select_non_overlapping_blocks`): the block of k layers s..s+k-1
whose input and output are closest in angular distance at the last token, d = arccos(cos(h_s, h_{s+k}))/pi
(h_i enters layer i), averaged over calibration sequences; s >= 1, because the map lives in layer s-1.
Estimation (official `lstsq.py`, the `lstsq` variant and the default here): with M = the MLP output of layer
s-1, Y_s = the output of layer s-1 and Y_e = the hidden state after layer s+k-1, over every calibration token,
    T = (M^T M + alpha I)^-1 M^T (Y_e - Y_s + M)       (fp64; alpha = 0 by default, as the official configs),
so that layer s-1 with its MLP output replaced by M T maps its input to approximately Y_e. The fold is
W_down <- T^T W_down (and a bias b <- T^T b where the projection has one); layers s..s+k-1 are deleted. The
pruned model is a stock checkpoint of the same family (no new module). Official defaults: one block
(`num_A=1`), SlimOrca, max length 1024, `alpha=0`, `diag=false`.

Deviations, all stated:
- Calibration: the run's calibration windows (bench.data.calibration; no padding) instead of SlimOrca; the distance is
  the arccos of the mean last-token cosine (`averaging=mean_cosine`, the default); `averaging=per_sample`
  averages the per-sample distance, as the official `distance.py` does (tests/test_official_parity.py).
- Y_e is the raw residual stream; when the block ends at the last layer the official code regresses onto
  HF's final-normed hidden state instead (research/methods.md §0).
- Families whose MLP output passes through a post-feed-forward norm before the residual (Gemma 2/3): a full
  T cannot be folded through the norm, so the official `diag` variant is used there (T diagonal,
  t_c = sum M_c Y_c / sum M_c^2 in the post-norm output space) and folded into that norm's scale; the plan
  notes it. `diag=true` forces the diagonal variant everywhere.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Literal

import torch

from bench.core.errors import ConfigError, SurgeryError
from methods import register
from methods.base import Budget, PrunePlan, Pruner, Search
from methods.selection import angular, best_start, window_scores

log = logging.getLogger(__name__)


def fold_paths(model) -> tuple[str, str | None]:
    """(the feed-forward output projection, the post-feed-forward norm or None), relative to a layer."""
    from bench.models import arch

    fam = arch.family(model)
    if fam.ffn_out is None:
        raise ConfigError(f"ReplaceMe does not know where the MLP output projection of "
                          f"{getattr(model.config, 'model_type', '?')!r} layers is",
                          "add `ffn_out` to its bench.models.arch.FAMILIES record")
    return fam.ffn_out, fam.ffn[2] if fam.ffn else None


@torch.no_grad()
def normal_equations(model, batches, start: int, stop: int, source: str):
    """Accumulate M^T M and M^T B, B = Y_e - Y_s + M, in fp64 (M: output of `source` in layer start-1), and the
    squared norm of the target. Returns (MtM, MtB, BtB, tokens)."""
    from bench.models import arch

    layers = arch.decoder_layers(model)
    prev, last = start - 1, stop - 1
    got: dict[str, torch.Tensor] = {}

    def keep(name, stop_here=False):
        def hook(_module, _args, output):
            got[name] = arch.layer_output(output)
            if stop_here:
                raise arch.StopForward

        return hook

    handles = [layers[prev].get_submodule(source).register_forward_hook(keep("m")),
               layers[prev].register_forward_hook(keep("ys")), layers[last].register_forward_hook(keep("ye", True))]
    mtm = mtb = None
    btb, tokens = 0.0, 0
    with arch.hooks(handles):
        for ids, mask in batches:
            got.clear()
            arch.forward_until_stop(model, ids, mask)
            sel = mask.reshape(-1).bool()
            d = got["m"].shape[-1]
            m = got["m"].reshape(-1, d)[sel].double()
            b = (got["ye"].reshape(-1, d)[sel].double() - got["ys"].reshape(-1, d)[sel].double()) + m
            mtm = m.T @ m if mtm is None else mtm + m.T @ m
            mtb = m.T @ b if mtb is None else mtb + m.T @ b
            btb += float((b * b).sum())
            tokens += int(sel.sum())
    return mtm.cpu(), mtb.cpu(), btb, tokens


def solve(mtm: torch.Tensor, mtb: torch.Tensor, alpha: float, diag: bool) -> torch.Tensor:
    """T = (M^T M + alpha I)^-1 M^T B (least-norm where singular); diag: per-channel least squares."""
    if diag:
        return torch.diag(torch.diagonal(mtb) / (torch.diagonal(mtm) + alpha).clamp_min(1e-300))
    a = mtm + alpha * torch.eye(mtm.shape[0], dtype=mtm.dtype)
    return torch.linalg.lstsq(a, mtb, driver="gelsd").solution


@torch.no_grad()
def fold(layer, source: str, t: torch.Tensor, into_norm: bool) -> None:
    """Make `layer`'s MLP output y become y T: into the projection's weight (and bias), or, for a diagonal T,
    into a norm's scale."""
    module = layer.get_submodule(source)
    if into_norm:
        scale = norm_scale(module)
        module.weight.copy_(scale.offset_for(scale.effective * torch.diagonal(t).to(scale.effective.device)))
        return
    w = module.weight
    if isinstance(module, torch.nn.Linear):  # y = x W^T + b
        w.copy_((t.T.to(w.device) @ w.double()).to(w.dtype))
    elif w.dim() == 2 and w.shape[1] == t.shape[0]:  # GPT-2's Conv1D: y = x W + b
        w.copy_((w.double() @ t.to(w.device)).to(w.dtype))
    else:
        raise SurgeryError(f"cannot fold a linear map into {type(module).__name__} {source}",
                           "ReplaceMe folds into a Linear or Conv1D output projection")
    bias = getattr(module, "bias", None)
    if bias is not None:
        bias.copy_((bias.double() @ t.to(bias.device)).to(bias.dtype))


@dataclass
class _Scale:
    effective: torch.Tensor  # the per-channel factor the norm multiplies by (fp64)
    offset: float  # effective = offset + weight

    def offset_for(self, effective: torch.Tensor) -> torch.Tensor:
        return effective - self.offset


def norm_scale(norm) -> _Scale:
    """A norm's per-channel factor and whether it is `weight` or `1 + weight` (Gemma), found by probing it."""
    w = norm.weight
    x = torch.linspace(0.5, 1.5, w.shape[0], dtype=w.dtype, device=w.device).unsqueeze(0)
    saved = w.detach().clone()
    try:
        w.zero_()
        at_zero = norm(x)
    finally:
        w.copy_(saved)
    offset = 1.0 if float(at_zero.abs().max()) > 0 else 0.0
    return _Scale(saved.double() + offset, offset)


@register
class ReplaceMe(Pruner):
    name = "replaceme"
    title = "ReplaceMe (training-free linear block replacement)"
    paper = "2505.02819"
    needs_calibration = True
    order = 58

    @dataclass(frozen=True)
    class Params:
        alpha: float = 0.0  # ridge regularisation of the least squares (official default 0)
        diag: bool = False  # force a diagonal T (the official `diag` option)
        averaging: Literal["mean_cosine", "per_sample"] = "mean_cosine"  # per_sample: the official distance.py

        def __post_init__(self):
            if self.alpha < 0:
                raise ValueError("alpha must be >= 0")
            if self.averaging not in ("mean_cosine", "per_sample"):
                raise ValueError("averaging must be mean_cosine or per_sample")

    def __init__(self, params=None):
        super().__init__(params)
        self._transforms: dict[str, torch.Tensor] = {}  # digest -> T, from `plan` to `apply`

    def plan(self, model, calib, budget: Budget) -> PrunePlan:
        p = self.params
        calib = self.require_calib(calib)
        k = budget.layers_for(model)
        source, post_norm = fold_paths(model)
        into = post_norm or source
        diag = p.diag or post_norm is not None
        with Search(model) as search:
            if p.averaging == "per_sample":
                distance = window_scores(calib.stats.angle_last, k)
            else:
                distance = [angular(c) for c in window_scores(calib.stats.cos_last, k)]
            start = 1 + best_start(distance[1:], highest=False)
            mtm, mtb, btb, tokens = normal_equations(model, calib.batches(), start, start + k, into)
            t = solve(mtm, mtb, p.alpha, diag)
            search.add(tokens=tokens)
        residual = float(torch.trace(t.T @ mtm @ t) - 2 * torch.trace(t.T @ mtb) + btb) / max(btb, 1e-300)
        digest = hashlib.sha256(t.numpy().tobytes()).hexdigest()[:16]
        self._transforms[digest] = t
        removed = list(range(start, start + k))
        plan = self.removal_plan(model, budget, removed,
                                 {"angular_distance": distance, "window": k, "start": start,
                                  "lstsq_relative_residual": residual},
                                 calib, search.cost(capture_seconds=calib.stats.seconds))
        plan.ops = [{"op": "fold", "layer": start - 1, "into": into, "diag": diag, "transform": digest},
                    {"op": "remove", "layers": removed}]
        plan.notes.append(f"ReplaceMe: layers {start}..{start + k - 1} replaced by a linear map T folded into layer "
                          f"{start - 1}'s {into} ({'diagonal' if diag else 'full'} T from {tokens} calibration "
                          f"tokens; relative least-squares residual {residual:.4f}). T is held by the pruner, not "
                          "the plan file: the saved checkpoint carries it.")
        if tokens < mtm.shape[0] * 4 and not diag:
            plan.notes.append(f"Only {tokens} calibration tokens for a {mtm.shape[0]} x {mtm.shape[0]} map: T is "
                              "poorly determined (underdetermined below one token per dimension) and overfits the "
                              "calibration text; give more calibration samples (the official runs use thousands of "
                              "1024-token SlimOrca samples) or alpha > 0.")
            log.warning("%s", plan.notes[-1])
        if post_norm and not p.diag:
            plan.notes.append("A full T cannot pass this family's post-feed-forward norm: the official diagonal "
                              "variant was used, folded into the norm's scale.")
        return plan

    def apply(self, model, plan: PrunePlan):
        from bench.models import arch
        from methods.surgery import apply_ops

        rest = []
        for op in plan.ops:
            if op["op"] != "fold":
                rest.append(op)
                continue
            t = self._transforms.get(op["transform"])
            if t is None:
                raise SurgeryError(f"the plan folds a ReplaceMe transform ({op['transform']}) this pruner did not "
                                   "estimate", "plan and apply with the same pruner, or load the saved checkpoint")
            _, post_norm = fold_paths(model)
            layer = arch.decoder_layers(model)[op["layer"]]
            with arch.offloaded_weights_writable(layer):  # a dispatched model: load, fold, write back
                fold(layer, op["into"], t, into_norm=op["into"] == post_norm)
        return apply_ops(model, rest)
