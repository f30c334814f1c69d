"""Driver: the official ShortGPT (icip-cas/ShortGPT shortgpt/shortgpt.py) on the harness's calibration windows.

Shares its name with methods.shortgpt: it is the official code's side of that method's parity fixture.
"""
import json
import sys

import torch

sys.path.insert(0, "/tmp/official-shortgpt/shortgpt")
from shortgpt import ShortGPT

meta = json.load(open("/tmp/official/tokens-q32.json"))
windows = torch.load("/tmp/official/tokens-q32.pt")
out = {}
for k in (5, 9):
    sg = ShortGPT(model_name=meta["folder"], layers_path="model.layers", n_prune_layers=k)
    for start in range(0, len(windows), 8):  # the harness's batches of 8 windows; no padding
        ids = windows[start:start + 8]
        sg.eval_importance(prompts={"input_ids": ids, "attention_mask": torch.ones_like(ids)}, stride=256, max_gen_len=0)
    prune_order = [i for i, _ in sorted(enumerate(sg.importances), key=lambda x: x[1])]  # as run_shortgpt.py
    removed = sg.remove_layers()
    out[str(k)] = {"importances_sum": [float(x) for x in sg.importances], "prune_order": prune_order,
                   "removed": sorted(removed), "n_tokens": int(windows.numel()), "dtype": str(sg.model.dtype)}
    print(k, sorted(removed), prune_order[:12])
json.dump(out, open("/tmp/official/result-shortgpt.json", "w"), indent=1)
