"""LLM-Drop (He et al., "What Matters in Transformers? Not All Attention Is Needed", arXiv 2406.15786):
one-shot dropping of the attention sublayers, MLP sublayers or blocks whose output changes the residual
stream least.

Official code (CASE-Lab-UMD/LLM-Drop @28b5dd1, `src/llmtuner/compression/prune/layer_drop.py`
`get_layer_similarities` / `discrete_layer_dropping`, `block_drop.py` `get_block_similarities` /
`discrete_block_dropping`): on the dense model, for every layer, the similarity of a sublayer is
cos(x, x + f(LN(x))) per token, in fp32, averaged over every calibration token (`--layer_drop_norm True`,
the scripts' setting: x is the input of the sublayer's pre-norm); a block's is cos(layer input, layer output).
`discrete`: the `drop_n` units of highest similarity are dropped (importance 1 - similarity, lowest first).
Modes: `attn` (`--target_layer attn`, scripts/dropping/layer_drop.sh), `mlp`, `joint` (`--target_layer all`:
attention and MLP similarities concatenated and sorted together, layer_drop_joint.sh), `block`
(block_drop.sh, `--block_drop_method discrete`). A layer whose attention and MLP both go is a whole block.
Here the residual contribution f is read from the family's record (bench.models.sublayer: Gemma's post-norm output,
OPT's fc2), so every family is scored as Llama is in the official code.

Deviations, stated: calibration is the run's windows (bench.data.calibration) instead of 256 x 2048 tokens of C4
validation (`c4_val`) in bf16; the budget converts to units as for every sub-layer method (official: a
count `drop_n`); `joint` is the default mode because attention sublayers alone cannot reach a 25 % parameter
budget on most models (`mode=attn` is the official script's default). Not implemented: the `iterative`
variant (layer_drop_iterative.sh) and `consecutive` block dropping.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from methods import register
from methods.base import Budget, Pruner, Search
from methods.sublayers import budget_target, take_in_order, to_lists, unit_name, unit_sizes

MODES = ("attn", "mlp", "block", "joint")


def _first(x):
    return x[0] if isinstance(x, (tuple, list)) else x


@torch.inference_mode()
def similarities(model, batches) -> dict[tuple[str, int], float]:
    """Mean over calibration tokens of cos(x, x + f) for every ("attn", i) and ("mlp", i), and of
    cos(layer input, layer output) for every ("block", i); one forward of the dense model per batch."""
    from bench.models import arch, sublayer

    rec = sublayer.sublayers(model)
    layers = arch.decoder_layers(model)
    sums: dict[tuple[str, int], float] = {}
    count = 0
    seen: dict[tuple[str, int], torch.Tensor] = {}
    handles = []

    def cos_sum(a, b, mask):
        c = F.cosine_similarity(a.float(), b.float(), dim=-1)
        return float((c * mask).sum())

    for i, layer in enumerate(layers):
        for kind in ("attn", "mlp"):
            def pre(_m, args, kwargs, key=(kind, i)):
                seen[key] = args[0] if args else kwargs["hidden_states"]

            def post(_m, _args, output, key=(kind, i)):
                seen[key + ("out",)] = _first(output)

            handles.append(layer.get_submodule(rec.reads(kind)).register_forward_pre_hook(pre, with_kwargs=True))
            handles.append(layer.get_submodule(rec.adds(kind)).register_forward_hook(post))

        def layer_pre(_m, args, kwargs, key=("block", i)):
            seen[key] = args[0] if args else kwargs["hidden_states"]

        def layer_post(_m, _args, output, key=("block", i)):
            seen[key + ("out",)] = _first(output)

        handles.append(layer.register_forward_pre_hook(layer_pre, with_kwargs=True))
        handles.append(layer.register_forward_hook(layer_post))
    try:
        for ids, mask in batches:
            seen.clear()
            model(input_ids=ids, attention_mask=mask, use_cache=False)
            m = mask.float()
            m = m.reshape(-1) if seen and next(iter(seen.values())).dim() == 2 else m
            for i in range(len(layers)):
                for kind in ("attn", "mlp", "block"):
                    x, out = seen[(kind, i)], seen[(kind, i, "out")]
                    y = out if kind == "block" else x.float() + out.float()
                    key = (kind, i)
                    sums[key] = sums.get(key, 0.0) + cos_sum(x, y, m.reshape(x.shape[:-1]))
            count += int(mask.sum())
    finally:
        for h in handles:
            h.remove()
    return {k: v / count for k, v in sums.items()}


@register
class LLMDrop(Pruner):
    name = "llm-drop"
    title = "LLM-Drop (attention / MLP / block drop by 1 - cos(x, x + f(LN(x))))"
    paper = "2406.15786"
    needs_calibration = True
    order = 61

    @dataclass(frozen=True)
    class Params:
        mode: str = "joint"  # attn | mlp | block | joint (official --target_layer attn / mlp / all, block_drop)

        def __post_init__(self):
            if self.mode not in MODES:
                raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")

    def plan(self, model, calib, budget: Budget):
        from bench.models import arch

        calib = self.require_calib(calib)
        n = arch.num_layers(model)
        with Search(model, "capture_seconds") as search:
            sims = similarities(model, calib.batches())
            search.add(tokens=len(calib.windows) * calib.spec.seq_len)
        kinds = {"attn": ("attn",), "mlp": ("mlp",), "block": ("block",), "joint": ("attn", "mlp")}[self.params.mode]
        units = [(k, i) for k in kinds for i in range(n)]  # the official concatenation: attention, then MLP
        order = sorted(units, key=lambda u: (-sims[u], units.index(u)))  # descending similarity
        chosen = take_in_order(order, unit_sizes(model), budget_target(model, budget), self.name)
        attn, mlp = to_lists(chosen)
        scores = {"similarity": {unit_name(u): sims[u] for u in sorted(sims)},
                  "importance": {unit_name(u): 1.0 - sims[u] for u in units},
                  "order": [unit_name(u) for u in order], "dropped": [unit_name(u) for u in chosen]}
        plan = self.sublayer_plan(model, budget, attn, mlp, scores, calib, search.cost())
        plan.notes.append(f"LLM-Drop ({self.params.mode}) dropped {scores['dropped']} (highest similarity "
                          "cos(x, x + f(LN(x))) first; scores.similarity has every unit).")
        return plan
