"""Issue 14 table: SmolLM2-135M; SLEB, Shortened-LLaMA PPL and Taylor+, ReplaceMe and ShortGPT at 4 and 8
removed layers: the chosen layers, plan seconds and the pruned model's C4-sample perplexity; for SLEB the
search cost with and without the prefix-state reuse, measured in one run with the two arms interleaved
round by round (each round runs both arms on the same removed set, checks that their losses are identical,
and removes the argmin, exactly as methods.sleb does; the 4-layer plan is the first four rounds of the
8-layer one, since greedy rounds do not look ahead).

    python scripts/pruners_table.py [--calib-samples 8] [--calib-seq-len 128] [--out pruners_table.md]

Resumable: every finished entry is kept in OUT.json and skipped when the script runs again.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import methods
from bench.data.calibration import Calibration, CalibSpec
from bench.evaluate.windowed_perplexity import evaluate_perplexity
from bench.models import arch, zoo
from methods.base import Budget
from methods.bypass import bypass_losses

ONE_SHOT = ["shortgpt", "ppl", "taylor", "replaceme"]


def sleb_interleaved(model, calib, k: int, log: dict, save, compare_rounds: int) -> None:
    """SLEB rounds with both arms timed in turn (alternating which goes first) for the first
    `compare_rounds` rounds, then the reuse arm alone; one entry per round."""
    n = arch.num_layers(model)
    rounds = log.setdefault("sleb_rounds", [])
    removed = [r["removed"] for r in rounds]
    for r in range(len(rounds), k):
        alive = [i for i in range(n) if i not in removed]
        candidates = alive[1:-1]
        seconds, results = {}, {}
        arms = ((True, False) if r % 2 == 0 else (False, True)) if r < compare_rounds else (True,)
        for reuse in arms:
            t = time.perf_counter()
            results[reuse] = bypass_losses(model, calib.batches(), removed, candidates, reuse=reuse)
            seconds[reuse] = time.perf_counter() - t
        assert results.get(False, results[True]) == results[True], "the two arms must give identical losses"
        totals, tokens = results[True]
        best = min(candidates, key=lambda c: (totals[c], c))
        removed.append(best)
        rounds.append({"removed": best, "candidates": len(candidates), "reuse_s": seconds[True],
                       "full_s": seconds.get(False), "mean_nll": totals[best] / tokens})
        print(f"sleb round {r + 1}: removed {best}; reuse {seconds[True]:.1f} s, full {seconds.get(False)} s",
              flush=True)
        save()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--calib-samples", type=int, default=8)
    ap.add_argument("--calib-seq-len", type=int, default=128)
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--layers", default="4,8")
    ap.add_argument("--compare-rounds", type=int, default=8, help="SLEB rounds timed in both arms")
    ap.add_argument("--out", default="pruners_table.md")
    args = ap.parse_args()
    budgets = [int(x) for x in args.layers.split(",")]
    state = Path(args.out + ".json")
    log = json.loads(state.read_text()) if state.exists() else {}

    def save():
        tmp = state.with_suffix(".tmp")
        tmp.write_text(json.dumps(log, indent=2))
        os.replace(tmp, state)

    model, tok = zoo.load(args.model)
    spec = CalibSpec(source="wikipedia", n_samples=args.calib_samples, seq_len=args.calib_seq_len)
    calib = Calibration(spec, model, tok)
    log["setup"] = {"model": args.model, "dtype": str(next(model.parameters()).dtype), "calib": spec.to_dict(),
                    "ppl": {"corpus": "c4", "window": args.window, "windows": args.windows}}

    def ppl(m):
        res = evaluate_perplexity(m, tok, "c4", window=args.window, max_windows=args.windows, batch_size=4)
        return res.perplexity, res.tokens

    if "dense" not in log:
        log["dense"] = dict(zip(("ppl", "tokens"), ppl(model)))
        save()
    calib.stats  # noqa: B018 - the boundary capture (shared by shortgpt and replaceme), timed on its own
    log["capture_s"] = calib.stats.seconds
    for k in budgets:
        for name in ONE_SHOT:
            key = f"{name}@{k}"
            if key in log:
                continue
            pruner = methods.create(name)
            t = time.perf_counter()
            plan = pruner.plan(model, calib, Budget(layers=k))
            plan_s = time.perf_counter() - t
            pruned = copy.deepcopy(model)
            pruner.apply(pruned, plan)
            value, _ = ppl(pruned)
            del pruned
            log[key] = {"removed": plan.removed_original, "order": plan.scores.get("order"), "plan_s": plan_s,
                        "ppl": value, "ratio": plan.param_ratio}
            print(key, log[key], flush=True)
            save()
    sleb_interleaved(model, calib, max(budgets), log, save, args.compare_rounds)
    for k in budgets:
        key = f"sleb@{k}"
        if key in log:
            continue
        rounds = log["sleb_rounds"][:k]
        removed = sorted(r["removed"] for r in rounds)
        pruned = copy.deepcopy(model)
        arch.remove_layers(pruned, removed)
        value, _ = ppl(pruned)
        del pruned
        compared = [r for r in rounds if r["full_s"] is not None]
        log[key] = {"removed": removed, "order": [r["removed"] for r in rounds],
                    "plan_s": sum(r["reuse_s"] for r in rounds), "compared_rounds": len(compared),
                    "compared_reuse_s": sum(r["reuse_s"] for r in compared),
                    "compared_full_s": sum(r["full_s"] for r in compared), "ppl": value}
        print(key, log[key], flush=True)
        save()
    write_table(log, budgets, args.out)


def write_table(log: dict, budgets: list[int], out: str) -> None:
    rows = ["| method | layers removed | dense layer indices removed (pruning order) | plan s | C4-sample ppl |",
            "|---|---|---|---|---|", f"| dense | 0 | - | - | {log['dense']['ppl']:.2f} |"]
    for k in budgets:
        for name in ["sleb", *ONE_SHOT]:
            e = log[f"{name}@{k}"]
            order = f" ({e['order']})" if e.get("order") and e["order"] != e["removed"] else ""
            rows.append(f"| {name} | {k} | {e['removed']}{order} | {e['plan_s']:.1f} | {e['ppl']:.2f} |")
    lines = ["| SLEB rounds | removed | candidates | reuse s | full forwards s | ratio |", "|---|---|---|---|---|---|"]
    for i, r in enumerate(log["sleb_rounds"], 1):
        full = f"{r['full_s']:.1f} | {r['reuse_s'] / r['full_s']:.3f}" if r["full_s"] else "- | -"
        lines.append(f"| {i} | {r['removed']} | {r['candidates']} | {r['reuse_s']:.1f} | {full} |")
    compared = [r for r in log["sleb_rounds"] if r["full_s"]]
    reuse, full = sum(r["reuse_s"] for r in compared), sum(r["full_s"] for r in compared)
    lines.append(f"| 1-{len(compared)} (both arms) | | | {reuse:.1f} | {full:.1f} | {reuse / full:.3f} |")
    s = log["setup"]
    text = "\n".join(rows) + "\n\n" + "\n".join(lines) + (
        f"\n\n{s['model']} ({s['dtype']}); calibration {json.dumps(s['calib'])}; C4-sample perplexity over the "
        f"first {s['ppl']['windows']} windows of {s['ppl']['window']} tokens ({log['dense']['tokens']} tokens). "
        f"Plan seconds exclude the shared boundary capture ({log['capture_s']:.1f} s, used by shortgpt and "
        "replaceme). SLEB's plan seconds are its reuse arm's; both arms ran interleaved round by round in one "
        "process and gave identical losses.\n")
    Path(out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
