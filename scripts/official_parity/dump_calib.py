"""Dump the harness's calibration windows (bench.data.calibration, exactly as a Pruner gets them) for official scripts.

Usage (from the repository root, PYTHONPATH=.): python scripts/official_parity/dump_calib.py NAME N SEQ_LEN BATCH
writes /tmp/official/tokens-NAME.pt (the windows) and tokens-NAME.json (spec, shape, sha256, model folder).
The fixtures use q32 (32 x 128, batch 8: ShortGPT, angular, LLM-Streamline, Taylor+, ReplaceMe) and s4
(4 x 64, batch 4: SLEB, PPL, LaCo, whose searches run the model once per candidate).
"""
import hashlib
import json
import sys
import time

import torch

from bench.data.calibration import Calibration, CalibSpec
from bench.models import zoo

name, n, seq, bs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
model, tok = zoo.load(zoo.DEFAULT_MODEL, device="cpu", dtype="float32")
print(next(model.parameters()).dtype)
spec = CalibSpec(source="wikipedia", n_samples=n, seq_len=seq, batch_size=bs)
calib = Calibration(spec, model, tok)
w = calib.windows
torch.save(w, f"/tmp/official/tokens-{name}.pt")
sha = hashlib.sha256(w.numpy().tobytes()).hexdigest()
json.dump({"spec": spec.to_dict(), "shape": list(w.shape), "sha256": sha, "folder": str(zoo.ensure_local(zoo.DEFAULT_MODEL))},
          open(f"/tmp/official/tokens-{name}.json", "w"), indent=1)
t = time.time()
with torch.inference_mode():
    for ids, m in calib.batches():
        model(input_ids=ids, attention_mask=m)
print(w.shape, sha, "forward s", time.time() - t)
