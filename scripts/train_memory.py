"""Peak memory of LLM-Streamline training does not grow with the number of training windows.

    python scripts/train_memory.py [--model smollm2-135m] [--n 16] [--seq-len 256] [--replacement layer]

Plans once on the dense model, then, in one process, trains the replacement on N and on 4N windows (a fresh
copy of the dense model each time) and prints each training phase's peak memory as `bench.core.costmeter.CostMeter`
measures it (CUDA: max allocated; CPU: sampled RSS, so the second phase is not hidden by the first's peak).
The absolute peaks include the resident models; `peak - start` is what training itself added, and is the
number that would grow if the teacher states of the training set were held (the official code's issue #5):
4N windows x seq_len x hidden x 4 bytes x 2 (inputs and targets). Exit code 1 when a ratio exceeds 1.15.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import logging

import torch

import methods
from bench.data.calibration import Calibration, CalibSpec
from bench.data.training_text import TrainData, TrainDataSpec
from bench.models import zoo
from methods.base import Budget


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--n", type=int, default=16, help="N training windows (then 4N)")
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--replacement", default="layer")
    p.add_argument("--objective", default="mse")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--out", help="write the numbers as JSON here")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    model, tok = zoo.load(args.model, device=args.device, dtype=args.dtype)
    calib = Calibration(CalibSpec(n_samples=32, seq_len=128), model, tok)
    data = TrainData(TrainDataSpec(source="c4"), tok)
    rows = []
    for n in (args.n, 4 * args.n):
        pruner = methods.create("streamline", {"replacement": args.replacement, "objective": args.objective,
                                               "train_samples": n, "train_seq_len": args.seq_len,
                                               "train_batch": args.batch})
        plan = pruner.plan(model, calib, Budget(layers=args.layers))
        pruned = pruner.apply(copy.deepcopy(model), plan)
        cost = pruner.heal(pruned, plan, data)
        held = 2 * n * args.seq_len * model.config.hidden_size * 4
        rows.append({"windows": n, "tokens": cost["tokens"], "steps": cost["steps"],
                     "wall_seconds": cost["wall_seconds"], "peak_bytes": cost["peak_memory_bytes"],
                     "start_bytes": cost["memory_start_bytes"],
                     "added_bytes": cost["peak_memory_bytes"] - cost["memory_start_bytes"],
                     "teacher_states_if_held_bytes": held, "memory_source": cost["memory_source"]})
        del pruned, pruner, cost
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    mib = 2 ** 20
    print(f"{'windows':>8} {'tokens':>8} {'steps':>6} {'wall s':>7} {'peak MiB':>9} {'added MiB':>10} "
          f"{'states if held MiB':>19}")
    for r in rows:
        print(f"{r['windows']:>8} {r['tokens']:>8} {r['steps']:>6} {r['wall_seconds']:>7.1f} "
              f"{r['peak_bytes'] / mib:>9.1f} {r['added_bytes'] / mib:>10.1f} "
              f"{r['teacher_states_if_held_bytes'] / mib:>19.1f}")
    ratio = rows[1]["peak_bytes"] / rows[0]["peak_bytes"]
    added_ratio = rows[1]["added_bytes"] / max(1, rows[0]["added_bytes"])
    print(f"peak ratio 4N/N = {ratio:.3f}; added-memory ratio 4N/N = {added_ratio:.3f} ({rows[0]['memory_source']})")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"rows": rows, "peak_ratio": ratio, "added_ratio": added_ratio, "args": vars(args)}, fh,
                      indent=2)
    return 0 if ratio <= 1.15 and added_ratio <= 1.15 else 1


if __name__ == "__main__":
    raise SystemExit(main())
