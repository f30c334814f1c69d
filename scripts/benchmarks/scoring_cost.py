"""Scoring cost: ShortGPT + Streamline + angular from one boundary capture vs one plain forward pass.

    python -m scripts.benchmarks.scoring_cost [--model smollm2-135m] [--samples 64] [--seq-len 128] [--repeats 3]

Both are timed over the same calibration tokens, interleaved (plain, scoring, plain, scoring, ...) after a
warm-up, so machine load hits both alike; the medians and their ratio are printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch


def _plain_forward(model, calib) -> None:
    with torch.inference_mode():
        for ids, mask in calib.batches():
            model(input_ids=ids, attention_mask=mask, use_cache=False)


def _score_all(model, calib, budget) -> dict:
    import methods
    from bench.data.calibration import Calibration

    fresh = Calibration.__new__(Calibration)  # same windows, no cached stats: capture again
    fresh.__dict__.update({k: v for k, v in calib.__dict__.items() if k != "stats"})
    scorers = {"shortgpt": None, "streamline": {"replacement": "none"}, "angular": None}  # selection only
    plans = {name: methods.create(name, params).plan(model, fresh, budget) for name, params in scorers.items()}
    return {name: plan.removed_original for name, plan in plans.items()}


def measure(model_name: str, samples: int, seq_len: int, repeats: int, layers: int) -> dict:
    from bench.data.calibration import Calibration, CalibSpec
    from bench.models import zoo
    from methods.base import Budget

    model, tok = zoo.load(model_name)
    calib = Calibration(CalibSpec(n_samples=samples, seq_len=seq_len), model, tok)
    budget = Budget(layers=layers)
    _plain_forward(model, calib)  # warm-up
    _score_all(model, calib, budget)
    plain, scoring, chosen = [], [], None
    for _ in range(repeats):
        t = time.perf_counter()
        _plain_forward(model, calib)
        plain.append(time.perf_counter() - t)
        t = time.perf_counter()
        chosen = _score_all(model, calib, budget)
        scoring.append(time.perf_counter() - t)
    return {"model": model_name, "dtype": str(next(model.parameters()).dtype), "tokens": samples * seq_len,
            "threads": torch.get_num_threads(), "plain_forward_s": plain, "scoring_s": scoring,
            "ratio_of_medians": statistics.median(scoring) / statistics.median(plain), "chosen": chosen}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--layers", type=int, default=8)
    args = ap.parse_args()
    result = measure(args.model, args.samples, args.seq_len, args.repeats, args.layers)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")  # this command's output


if __name__ == "__main__":
    main()
