"""Issue table: SmolLM2-135M, Wikipedia-sample calibration; each one-shot method's chosen layers at 4 and
8 removed layers and the pruned model's C4-sample perplexity.

    python scripts/methods_table.py [--windows 16] [--window 512] [--out table.md]
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import methods
from bench.data.calibration import Calibration, CalibSpec
from bench.evaluate.windowed_perplexity import evaluate_perplexity
from bench.models import zoo
from methods.base import Budget

ONE_SHOT = {"streamline": {"replacement": "none"}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--layers", default="4,8")
    ap.add_argument("--out", default="methods_table.md")
    args = ap.parse_args()
    model, tok = zoo.load(args.model)
    calib = Calibration(CalibSpec(source="wikipedia", n_samples=64, seq_len=128), model, tok)

    def ppl(m):
        return evaluate_perplexity(m, tok, "c4", window=args.window, max_windows=args.windows, batch_size=4)

    dense = ppl(model)
    rows = [("dense", "-", "-", f"{dense.perplexity:.2f}", "-")]
    log = {"dense": dense.perplexity, "tokens": dense.tokens}
    for k in [int(x) for x in args.layers.split(",")]:
        for name in methods.list_methods():
            pruner = methods.create(name, ONE_SHOT.get(name))
            t = time.perf_counter()
            plan = pruner.plan(model, calib if pruner.needs_calibration else None, Budget(layers=k))
            plan_s = time.perf_counter() - t
            pruned = copy.deepcopy(model)
            pruner.apply(pruned, plan)
            res = ppl(pruned)
            del pruned
            rows.append((name, str(k), str(plan.removed_original), f"{res.perplexity:.2f}", f"{plan_s:.1f}"))
            log[f"{name}@{k}"] = {"removed": plan.removed_original, "ppl": res.perplexity, "plan_s": plan_s,
                                  "ratio": plan.param_ratio, "notes": plan.notes}
            print(rows[-1], flush=True)
    lines = ["| method | layers removed | dense layer indices removed | C4-sample ppl | plan s |",
             "|---|---|---|---|---|"] + ["| " + " | ".join(r) + " |" for r in rows]
    text = "\n".join(lines) + f"\n\nC4-sample perplexity: first {args.windows} windows of {args.window} tokens " \
                              f"({dense.tokens} tokens); calibration {json.dumps(calib.spec.to_dict())}; " \
                              f"boundary capture {calib.stats.seconds:.1f} s.\n"
    open(args.out, "w").write(text)
    open(args.out + ".json", "w").write(json.dumps(log, indent=2))
    print(text)


if __name__ == "__main__":
    main()
