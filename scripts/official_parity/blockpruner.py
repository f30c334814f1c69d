"""Driver: the official BlockPruner search on the harness's calibration windows (SmolLM2-135M, fp32, CPU).

Shares its name with methods.blockpruner: it is the official code's side of that method's parity fixture.

Official code: MrGGLS/BlockPruner @821070741e7b45683e54ed986e6bf29f66a88d5d, unmodified, imported from a checkout
outside the project (OFFICIAL_BLOCKPRUNER, default /tmp/official-blockpruner): block_search.py
`block_search_by_ppl` (apply_block_masks, revert_block_masks, MaskedLlamaDecoderLayer) and utils.py
`evaluate_ppl`; --block-type mix, the harness's windows as its test_loader.

Usage (from the repository root): python scripts/official_parity/blockpruner.py
runs the search until the removed parameters pass 25 % of the model's, recording each round's removed sublayer
(from the official "best_seq" print) and every candidate's perplexity (by wrapping utils.evaluate_ppl), and
writes PARITY_OUT/blockpruner.json (PARITY_OUT defaults to /tmp/official-parity).

Shims for transformers 5.x only (API, not logic): the official MaskedLlamaDecoderLayer unpacks three values
from the attention (5.x returns two) and returns a tuple (5.x layers return the tensor).
"""
import argparse
import json
import os
import sys
import time

import sublayer_common as common
from torch import nn

OFFICIAL = os.environ.get("OFFICIAL_BLOCKPRUNER", "/tmp/official-blockpruner")  # the official checkout
OUT = common.OUT  # PARITY_OUT, default /tmp/official-parity

sys.path.insert(0, OFFICIAL)
import block_search  # noqa: E402  (official)
import utils as bp_utils  # noqa: E402  (official)


class ThreeTuple(nn.Module):
    def __init__(self, attn):
        super().__init__()
        self.attn = attn

    def forward(self, *a, **k):
        return (*self.attn(*a, **k), None)


_setting = block_search.MaskedLlamaDecoderLayer.setting_layer


def setting_layer(self, layer):
    _setting(self, layer)
    if self.self_attn is not None and not isinstance(self.self_attn, ThreeTuple):
        self.self_attn = ThreeTuple(self.self_attn)


block_search.MaskedLlamaDecoderLayer.setting_layer = setting_layer
_forward = block_search.MaskedLlamaDecoderLayer.forward
block_search.MaskedLlamaDecoderLayer.forward = lambda self, h, *a, **k: _forward(self, h, *a, **k)[0]

model, tok, calib = common.load("greedy")
units, total = common.sizes(model)
target = 0.25 * total
n = model.config.num_hidden_layers
loader = [{"input_ids": ids, "attention_mask": mask} for ids, mask in calib.batches()]
calls = []
_eval = bp_utils.evaluate_ppl


class Done(Exception):
    pass


state = {"removed": [], "params": 0}


def evaluate_ppl(model_, pad, loader_, silence=True):
    v = _eval(model_, pad, loader_, silence)
    calls.append(v)
    return v


block_search.utils.evaluate_ppl = evaluate_ppl
rounds = []
_print = print


def on_print(*a, **k):  # the official loop prints "best_seq (k): [...]" after each step
    s = " ".join(map(str, a))
    _print(s, flush=True)
    if s.startswith("best_seq"):
        seq = eval(s.split(": ", 1)[1])
        new = [u for u in seq if list(u) not in [list(r) for r in state["removed"]]]
        assert len(new) == 1
        state["removed"].append(new[0])
        kind, i = new[0]
        state["params"] += units["attn" if kind == "mha" else "mlp"][i]
        cands = [("mha", j) for j in range(n) if ("mha", j) not in [tuple(r) for r in state["removed"][:-1]]] + \
                [("mlp", j) for j in range(n) if ("mlp", j) not in [tuple(r) for r in state["removed"][:-1]]]
        scores = calls[-len(cands):]
        rounds.append({"removed": f"{'attn' if kind == 'mha' else 'mlp'}{i}",
                       "scores": {f"{'attn' if k == 'mha' else 'mlp'}{j}": v for (k, j), v in zip(cands, scores)}})
        if state["params"] > target:
            raise Done


block_search.print = on_print
args = argparse.Namespace(block_type="mix", del_block_num=2 * n - 1, cal_dataset="harness", cal_nsamples=1,
                          model_path="SmolLM2-135M", ppl_search_path=OUT)
t0 = time.time()
try:
    block_search.block_search_by_ppl(args, model, loader)
except Done:
    pass
json.dump({"order": [r["removed"] for r in rounds], "rounds": rounds, "seconds": time.time() - t0,
           "pad_token_id": model.config.pad_token_id}, open(f"{OUT}/blockpruner.json", "w"), indent=1)
print("done", [r["removed"] for r in rounds], time.time() - t0)
