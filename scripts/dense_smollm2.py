"""Dense SmolLM2-135M reference numbers on real data: accuracy, perplexity, wall times.

    python scripts/dense_smollm2.py [--model-dir DIR] [--out DIR] [--batch-size 16] [--dtype bf16]

Without --model-dir the model comes from the zoo (`bench.models.zoo.load("smollm2-135m")`). Each step writes
<out>/<step>.json (the full result, per-sample records included) and is skipped when that file exists,
so an interrupted run resumes. The summary table goes to <out>/summary.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path

import torch

from bench.core.atomic import write_json, write_text
from bench.evaluate.multiple_choice import evaluate_accuracy
from bench.evaluate.timing import measure_latency
from bench.evaluate.windowed_perplexity import evaluate_perplexity

# (step name, task or corpus, limit): accuracy steps first, cheapest first
ACCURACY = [("winogrande", "winogrande", None), ("piqa", "piqa", None), ("arc_easy", "arc_easy", None),
            ("hellaswag-500", "hellaswag", 500), ("lambada_openai-1000", "lambada_openai", 1000),
            ("lambada_openai", "lambada_openai", None)]   # full LAMBADA: only with --only lambada_openai
PERPLEXITY = [("ppl-wikipedia", "wikipedia"), ("ppl-c4", "c4")]
LATENCY = [("latency-bs1", 1, 128, 64)]          # (step, batch, prompt tokens, new tokens)


def load(args):
    if args.model_dir:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from bench.core.device import resolve_dtype

        dtype = resolve_dtype(args.dtype, torch.device("cpu"))
        model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=dtype).eval()
        return model, AutoTokenizer.from_pretrained(args.model_dir), {"model": "smollm2-135m", "source": args.model_dir}
    from bench.models import zoo

    model, tok = zoo.load("smollm2-135m", device="cpu", dtype=args.dtype)
    return model, tok, {"model": "smollm2-135m", "source": "bench.models.zoo"}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model-dir")
    p.add_argument("--out", default="/tmp/dense_smollm2")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--dtype", default="auto", help="auto: bf16 only where the CPU has native bf16, else fp32")
    p.add_argument("--window", type=int, default=512)
    p.add_argument("--ppl-max-tokens", type=int, default=131072, help="perplexity cap per corpus (0: none)")
    p.add_argument("--only", help="comma-separated step names")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(",")) if args.only else None
    t0 = time.perf_counter()
    model, tok, identity = load(args)
    identity["dtype"] = str(next(model.parameters()).dtype).removeprefix("torch.")
    load_s = time.perf_counter() - t0
    print(f"model loaded in {load_s:.1f} s; {identity['dtype']}; torch threads {torch.get_num_threads()}", flush=True)
    for step, task, limit in ACCURACY:
        if (only and step not in only) or (out / f"{step}.json").exists():
            continue
        if step == "lambada_openai" and not only:
            continue
        r = evaluate_accuracy(model, tok, [task], batch_size=args.batch_size, limit=limit, identity=identity,
                              keep_lm_eval_samples=False)
        write_json(out / f"{step}.json", r.artifact())
        s = r.tasks[task]
        print(f"{step}: acc {s.acc} acc_norm {s.acc_norm} n {s.n}/{s.n_total} {s.extra} wall {r.wall_s:.1f} s",
              flush=True)
    for step, corpus in PERPLEXITY:
        if (only and step not in only) or (out / f"{step}.json").exists():
            continue
        r = evaluate_perplexity(model, tok, corpus, window=args.window, batch_size=8, identity=identity,
                                max_tokens=args.ppl_max_tokens or None)
        write_json(out / f"{step}.json", dataclasses.asdict(r))  # provenance and identity too
        print(f"{step}: ppl {r.perplexity:.3f} tokens {r.tokens} windows {r.windows} wall {r.wall_s:.1f} s",
              flush=True)
    for step, batch, prompt, new in LATENCY:
        if (only and step not in only) or (out / f"{step}.json").exists():
            continue
        r = measure_latency(model, batch_size=batch, prompt_tokens=prompt, new_tokens=new, warmup=1, repeats=5,
                            identity=identity)
        write_json(out / f"{step}.json", dataclasses.asdict(r))  # provenance and identity too
        print(f"{step}: prefill {r.prefill_ms:.1f} ms, ttft {r.ttft_ms:.1f} ms, decode {r.decode_tokens_per_s:.1f} tok/s",
              flush=True)
    write_text(out / "summary.md", summary(out))
    print(summary(out))


def summary(out: Path) -> str:
    lines = ["| Task (split) | docs | acc | acc_norm | other | wall s |", "|---|---|---|---|---|---|"]
    for step, task, _ in ACCURACY:
        f = out / f"{step}.json"
        if not f.exists():
            continue
        d = json.loads(f.read_text())
        s = d["tasks"][task]
        fmt = lambda v: "–" if v is None else f"{v:.4f}"  # noqa: E731
        other = ", ".join(f"{k} {v:.3f}" for k, v in s["extra"].items() if v is not None and "stderr" not in k)
        lines.append(f"| {task} ({s['split']}) | {s['n']}/{s['n_total']} | {fmt(s['acc'])} ± "
                     f"{fmt(s['acc_stderr'])} | {fmt(s['acc_norm'])} | {other} | {d['wall_s']:.0f} |")
    lines += ["", "| Corpus | window | tokens | windows | perplexity | wall s |", "|---|---|---|---|---|---|"]
    for step, _ in PERPLEXITY:
        f = out / f"{step}.json"
        if f.exists():
            d = json.loads(f.read_text())
            lines.append(f"| {d['corpus']} | {d['window']} | {d['tokens']} | {d['windows']}/{d['windows_total']} | "
                         f"{d['perplexity']:.3f} | {d['wall_s']:.0f} |")
    lines += ["", "| Latency | prefill ms | TTFT ms | decode tok/s | peak RSS MB | params | repeats (decode tok/s) |",
              "|---|---|---|---|---|---|---|"]
    for step, batch, prompt, new in LATENCY:
        f = out / f"{step}.json"
        if f.exists():
            d = json.loads(f.read_text())
            runs = ", ".join(f"{x:.1f}" for x in d["decode_tokens_per_s_runs"])
            lines.append(f"| bs {batch} x {prompt} + {new} new ({d['dtype']}, {d['torch_threads']} threads) | "
                         f"{d['prefill_ms']:.1f} | {d['ttft_ms']:.1f} | {d['decode_tokens_per_s']:.1f} | "
                         f"{d['peak_memory_bytes'] / 2**20:.0f} | {d['parameters']:,} | {runs} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
