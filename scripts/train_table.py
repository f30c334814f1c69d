"""Training-based pruning on SmolLM2-135M: C4-sample perplexity, PIQA / ARC-Easy accuracy, training cost.

    python scripts/train_table.py [--out /tmp/train_table] [--layers 8] [--limit 200] [--train-samples 96]

Variants (each pruned from the same dense model, 8 of 30 layers by default): dense, shortgpt, streamline
none / layer / mlp (MSE objective), last without and with healing. Trained variants use the C4 sample's
training split (`bench.data.training_text`); perplexity is scored on the C4 sample's evaluation range only (the evaluator's first
`--ppl-windows` windows of `--window` tokens; `bench.data.splits`).
Each variant writes <out>/<variant>.json and is skipped when that file exists, so a run resumes; the
markdown table goes to <out>/table.md. The model runs in the dtype `bench.models.zoo` picks (fp32 on CPUs without
native bf16, where bf16 autocast is several times slower).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

import methods
from bench.core.atomic import write_json, write_text
from bench.data.calibration import Calibration, CalibSpec
from bench.data.training_text import TrainData, TrainDataSpec
from bench.evaluate.multiple_choice import evaluate_accuracy
from bench.evaluate.windowed_perplexity import evaluate_perplexity
from bench.models import arch, zoo
from bench.run.pipeline import prune
from methods.base import Budget

TASKS = ("piqa", "arc_easy")


def variants(args) -> list[tuple[str, str | None, dict]]:
    train = {"train_samples": args.train_samples, "train_seq_len": args.seq_len, "train_batch": args.batch}
    return [
        ("dense", None, {}),
        ("shortgpt", "shortgpt", {}),
        ("streamline-none", "streamline", {"replacement": "none"}),
        ("streamline-layer", "streamline", {"replacement": "layer", "objective": "mse", **train}),
        ("streamline-mlp", "streamline", {"replacement": "mlp", "objective": "mse", **train}),
        ("last", "last", {}),
        ("last-heal", "last", {"heal": True, "heal_layers": 3,
                               **{**train, "train_samples": args.heal_samples or args.train_samples}}),
    ] + ([("streamline-layer-lm", "streamline", {"replacement": "layer", "objective": "lm",
                                                 **{**train, "train_samples": args.heal_samples or args.train_samples}})]
         if args.with_lm else []) \
      + ([("streamline-layer-skip1", "streamline", {"replacement": "layer", "objective": "mse", "mse_skip_first": 1, **train})]
         if args.with_skip else [])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--out", default="/tmp/train_table")
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--limit", type=int, default=200, help="documents per accuracy task")
    p.add_argument("--window", type=int, default=512)
    p.add_argument("--ppl-windows", type=int, default=32)
    p.add_argument("--train-samples", type=int, default=96)
    p.add_argument("--heal-samples", type=int, default=None)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--eval-batch", type=int, default=16)
    p.add_argument("--only", help="comma-separated variant names")
    p.add_argument("--with-lm", action="store_true", help="add streamline layer with the next-token objective")
    p.add_argument("--with-skip", action="store_true", help="add streamline layer, MSE without position 0")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(",")) if args.only else None
    dense, tok = zoo.load(args.model)
    calib = Calibration(CalibSpec(source="wikipedia", n_samples=64, seq_len=128), dense, tok)
    data = TrainData(TrainDataSpec(source="c4"), tok)
    print(f"training text (disjoint from the evaluated range): {data.describe()}", flush=True)
    order = ["streamline-layer", "streamline-mlp", "last-heal", "dense", "shortgpt", "streamline-none", "last",
             "streamline-layer-lm", "streamline-layer-skip1"]
    for name, method, params in sorted(variants(args), key=lambda v: order.index(v[0])):
        path = out / f"{name}.json"
        if (only and name not in only) or path.exists():
            continue
        t0 = time.perf_counter()
        record: dict = {"variant": name, "method": method, "params": params, "dtype": str(next(dense.parameters()).dtype)}
        if method is None:
            model = dense
            record.update(layers=arch.num_layers(dense), params_total=arch.count_parameters(dense), param_ratio=0.0)
        else:
            result = prune(dense, methods.create(method, params), Budget(layers=args.layers), calib,
                           copy_model=True, heal_data=data)
            model, plan = result.model, result.plan
            record.update(layers=arch.num_layers(model), removed=plan.removed_original, ops=plan.ops,
                          params_total=arch.count_parameters(model), param_ratio=plan.param_ratio,
                          prune_seconds=result.seconds, cost=plan.cost)
        ppl = evaluate_perplexity(model, tok, "c4", window=args.window, max_windows=args.ppl_windows, batch_size=4)
        record["perplexity"] = {"corpus": ppl.corpus, "window": ppl.window, "windows": ppl.windows,
                                "tokens": ppl.tokens, "perplexity": ppl.perplexity, "wall_s": ppl.wall_s}
        print(f"{name}: C4 ppl {ppl.perplexity:.2f}", flush=True)
        acc = evaluate_accuracy(model, tok, list(TASKS), batch_size=args.eval_batch, limit=args.limit,
                                identity={"model": args.model, "variant": name}, keep_lm_eval_samples=False)
        record["accuracy"] = {t: {"acc": s.acc, "acc_norm": s.acc_norm, "n": s.n, "metric": s.metric}
                              for t, s in acc.tasks.items()}
        record["wall_s"] = time.perf_counter() - t0
        write_json(path, record)
        print(f"{name}: {json.dumps(record['accuracy'])} in {record['wall_s']:.0f} s", flush=True)
        if model is not dense:
            del model
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    write_text(out / "table.md", table(out, args))
    print(table(out, args))


def table(out: Path, args) -> str:
    lines = [f"| variant | layers | params removed | C4-sample ppl ({args.ppl_windows}x{args.window}) | "
             f"PIQA acc_norm | ARC-E acc_norm | train s | train tokens | train steps | peak MiB (train) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, _, _ in variants(args):
        f = out / f"{name}.json"
        if not f.exists():
            continue
        r = json.loads(f.read_text())
        tr = (r.get("cost") or {}).get("training") or {}
        acc = r["accuracy"]
        peak = f"{tr['peak_memory_bytes'] / 2**20:.0f}" if tr else "–"
        lines.append(
            f"| {name} | {r['layers']} | {100 * r['param_ratio']:.1f} % | {r['perplexity']['perplexity']:.2f} | "
            f"{acc['piqa']['acc_norm']:.3f} | {acc['arc_easy']['acc_norm']:.3f} | "
            f"{tr.get('wall_seconds', 0):.0f} | {tr.get('tokens', 0):,} | {tr.get('steps', 0)} | {peak} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
