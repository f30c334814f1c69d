"""Driver: the official LLM-Drop criterion on the harness's calibration windows (SmolLM2-135M, fp32, CPU).

Shares its name with methods.llm_drop: it is the official code's side of that method's parity fixture.

Official code: CASE-Lab-UMD/LLM-Drop @28b5dd14c2474c7110b2b42f5862a6dbdbe71a2d, unmodified, imported from a
checkout outside the project (OFFICIAL_LLMDROP, default /tmp/official-llmdrop):
src/llmtuner/compression/prune/layer_drop.py `get_layer_similarities`, `discrete_layer_dropping` and
src/llmtuner/compression/prune/block_drop.py `get_block_similarities`, `discrete_block_dropping`; one window per
batch (as the official dataloader), layer_drop_norm=True (as the scripts), Accelerator(cpu=True).

Usage (from the repository root): python scripts/official_parity/llm_drop.py
writes PARITY_OUT/llmdrop.json (PARITY_OUT defaults to /tmp/official-parity; the similarity caches in
PARITY_OUT/llmdrop_cache): the official similarities (attn, mlp, block) and the official selection per mode
(attn, mlp, joint, block) at 12.5 % and 25 %, drop_n = the harness's unit count for that budget
(Budget.prefix_length over the official descending order); null where the whole order cannot meet the budget.

Shims for transformers 5.x only (API, not logic): the official code calls each decoder layer alone without
`position_embeddings` (5.x computes RoPE once in the model), so a pre-hook adds them from the model's rotary
module; and it indexes `layer(...)[0]` (4.x layers returned tuples), so a hook returns a 1-tuple.
"""
import argparse
import json
import os
import sys
import types

import sublayer_common as common
import torch
from accelerate import Accelerator

OFFICIAL = os.environ.get("OFFICIAL_LLMDROP", "/tmp/official-llmdrop")  # the official checkout
OUT = common.OUT  # PARITY_OUT, default /tmp/official-parity

sys.path.insert(0, f"{OFFICIAL}/src")
for name in ("llmtuner", "llmtuner.compression", "llmtuner.compression.prune"):  # skip the package __init__s
    m = types.ModuleType(name)
    m.__path__ = [f"{OFFICIAL}/src/" + name.replace(".", "/")]
    sys.modules[name] = m
from llmtuner.compression.prune import block_drop, layer_drop  # noqa: E402  (official)

sys.path.insert(0, str(common.REPO))
from bench.models import arch  # noqa: E402
from methods.base import Budget  # noqa: E402

model, tok, calib = common.load("llmdrop")
units, total = common.sizes(model)
layer_params = [units["attn"][i] + units["mlp"][i] + 0 for i in range(len(units["attn"]))]  # kept as run (replaced next)
layer_params = arch.layer_parameter_counts(model)
rotary = model.model.rotary_emb


def pre(mod, args, kwargs):
    if "position_embeddings" not in kwargs:
        kwargs["position_embeddings"] = rotary(args[0], kwargs["position_ids"])
    return args, kwargs


for layer in model.model.layers:
    layer.register_forward_pre_hook(pre, with_kwargs=True)
    layer.register_forward_hook(lambda m, a, out: (out,) if torch.is_tensor(out) else out)
loader = [{"input_ids": ids[j:j + 1], "attention_mask": mask[j:j + 1]} for ids, mask in calib.batches() for j in range(ids.shape[0])]
acc = Accelerator(cpu=True)
n = len(loader)
cache = f"{OUT}/llmdrop_cache"
os.makedirs(cache, exist_ok=True)
sims = {}
for target in ("attn", "mlp"):
    sims[target] = layer_drop.get_layer_similarities(model, loader, acc, n, True, target_layer=target,
                                                     cache_file=f"{cache}/all_{target}.pt").tolist()
with torch.no_grad():
    sims["block"] = block_drop.get_block_similarities(model, loader, acc, n, cache_file=f"{cache}/block.pt")[:, 0].tolist()
L = len(layer_params)
out = {"similarities": sims, "selection": {}}
for ratio in (0.125, 0.25):
    target = Budget(ratio=ratio).target_parameters(layer_params, total)
    for mode in ("attn", "mlp", "joint", "block"):
        if mode == "joint":
            s = torch.tensor(sims["attn"] + sims["mlp"])
            sizes = units["attn"] + units["mlp"]
        elif mode == "block":
            s = torch.tensor(sims["block"])
            sizes = layer_params
        else:
            s = torch.tensor(sims[mode])
            sizes = units[mode]
        order = torch.sort(s, descending=True)[1].tolist()
        k = Budget.prefix_length([sizes[j] for j in order], target)
        if k >= len(order):
            out["selection"][f"{mode}@{ratio}"] = None
            continue
        args = argparse.Namespace(drop_n=k, target_layer={"joint": "all"}.get(mode, mode), layer_drop_norm=True,
                                  similarity_cache_file=f"{cache}/all.pt")
        if mode == "block":
            args.similarity_cache_file = f"{cache}/block.pt"
            dropped = block_drop.discrete_block_dropping(args, model, loader, acc, n)
            names = [f"block{j}" for j in dropped]
        else:
            if mode != "joint":
                args.similarity_cache_file = f"{cache}/all_{mode}.pt"
            dropped = layer_drop.discrete_layer_dropping(args, model, loader, acc, n)
            names = [(f"attn{j}" if j < L else f"mlp{j - L}") if mode == "joint" else f"{mode}{j}" for j in dropped]
        out["selection"][f"{mode}@{ratio}"] = names
json.dump(out, open(f"{OUT}/llmdrop.json", "w"), indent=1)
print(json.dumps(out["selection"]))
