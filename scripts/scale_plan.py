"""reports/scale.md: what the `paper` preset costs for 7B-70B models on one H100-80GB and on a Slurm cluster.

Inputs, each stated on the page with where it comes from:
- measured here: the tokens the preset's evaluation reads (reports/scale-tokens.json, scripts/scale_tokens.py:
  lm-eval's requests of every document of the seven tasks, counted with a real tokenizer; the corpora's full
  token counts), and the CPU per-token throughput of Qwen2.5-Coder-1.5B in memory and dispatched under
  --max-memory (reports/scale-measured.json, from the two `bench run` stores);
- structural (the harness's own defaults): the calibration and training sizes, the number of forward passes
  each method's plan makes, what a session holds in memory;
- assumed (no GPU was lent): an H100's effective bf16 throughput for scoring and training, PCIe bandwidth for
  offloaded weights. Replace them with the GPU check's numbers (scripts/gpu_check.py) when it has run.

    PYTHONPATH=. python scripts/scale_plan.py       # rewrites reports/scale.md
"""

from __future__ import annotations

import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKENS = json.loads((ROOT / "reports/scale-tokens.json").read_text())
MEASURED = json.loads((ROOT / "reports/scale-measured.json").read_text())

# the models (public configs): parameters, layers, hidden size, key/value heads, head dim, vocabulary
MODELS = {
    "Llama-2-7B": dict(params=6.74e9, layers=32, hidden=4096, kv_heads=32, head_dim=128, vocab=32000),
    "Llama-3-8B": dict(params=8.03e9, layers=32, hidden=4096, kv_heads=8, head_dim=128, vocab=128256),
    "Llama-3-70B": dict(params=70.6e9, layers=80, hidden=8192, kv_heads=8, head_dim=128, vocab=128256),
}
# assumptions (stated on the page)
H100_BF16_PEAK = 989e12      # dense bf16 tensor-core FLOP/s, H100 SXM
MFU_SCORE = 0.25             # share of peak a batched HF forward reaches when scoring (batch 32, short rows)
MFU_TRAIN = 0.20             # share of peak for the small training runs (forward + backward)
HBM_BYTES_S = 3.35e12 * 0.6  # decode reads every weight per step: 60 % of HBM3 bandwidth
STEP_OVERHEAD_S = 0.02       # HF eager decode: python and kernel launches per step, at least
PCIE_BYTES_S = 25e9          # host-to-GPU bandwidth actually reached for offloaded weights (PCIe 5 x16)
H100_MEM = 80e9
USABLE = 0.92                # of the 80 GB, after the CUDA context and the allocator's slack
BYTES = 2                    # bf16
TOKENIZER_FACTOR = {"Llama-2-7B": 1.10, "Llama-3-8B": 0.90, "Llama-3-70B": 0.90}  # vs the counting tokenizer
RATIOS = (0.125, 0.25)
METHODS = ("shortgpt", "streamline", "laco", "last", "angular", "sleb", "ppl", "taylor", "replaceme", "random")
CALIB_TOKENS = 64 * 128      # the paper preset's calibration: 64 windows of 128 tokens
STREAMLINE_TOKENS = 128 * 256  # bench.train.TrainParams defaults
LACO_TOKENS = 10 * 128       # n_sentences 10, per trial


def plan_forward_tokens(method: str, layers: int, removed: int) -> float:
    """Forward-token equivalents of a method's plan beyond the shared calibration capture (x full model)."""
    if method == "sleb":   # a greedy search: one calibration pass per candidate layer per removed layer
        return sum(layers - i for i in range(removed)) * CALIB_TOKENS
    if method == "ppl":    # one calibration pass per layer, each with that layer left out
        return layers * CALIB_TOKENS
    if method == "taylor":  # one forward and backward on the calibration windows
        return 3 * CALIB_TOKENS
    if method == "laco":   # a trial per candidate merge, relaxed rounds: about 2 x layers trials
        return 2 * layers * LACO_TOKENS
    if method == "streamline":  # training the replacement: forward + backward through the layers above it
        return 3 * STREAMLINE_TOKENS
    if method == "replaceme":   # one extra calibration pass to fit the linear map
        return CALIB_TOKENS
    return 0.0


def eval_tokens(name: str) -> dict[str, float]:
    f = TOKENIZER_FACTOR[name]
    acc = sum(t["tokens_prefix"] for t in TOKENS["tasks"].values()) * f
    acc_lm_eval = sum(t["tokens_lm_eval"] for t in TOKENS["tasks"].values()) * f
    corpora = sum(TOKENS["corpora"].values()) * f
    latency = (1 + 8) * (2 + 10) * 128 * 3  # batch sizes 1 and 8, warm-up 2 + 10 repeats, 3 prefills each
    return {"accuracy": acc, "accuracy_lm_eval": acc_lm_eval, "perplexity": corpora, "fidelity": corpora,
            "latency": latency}


def decode_seconds(params: float) -> float:
    """The latency probe's decode steps: per batch size (1, 8), per warm-up + repeat (12), a 1-token and a
    64-token generate, for the cell's model and, interleaved, the dense one; each step reads every weight."""
    steps = 2 * 12 * (1 + 64) * 2
    return steps * max(BYTES * params / HBM_BYTES_S, STEP_OVERHEAD_S)


def seconds(flops: float, mfu: float) -> float:
    return flops / (H100_BF16_PEAK * mfu)


def cell_costs(name: str) -> dict:
    """Seconds on one H100 (no streaming): the dense cell, and each (method, ratio) pruned cell."""
    m = MODELS[name]
    n, layers = m["params"], m["layers"]
    ev = eval_tokens(name)
    dense_eval = 2 * n * (ev["accuracy"] + ev["perplexity"] + ev["fidelity"] + ev["latency"])
    out = {"dense_s": seconds(dense_eval, MFU_SCORE) + seconds(2 * n * CALIB_TOKENS, MFU_SCORE)
           + decode_seconds(n) / 2, "cells": {}}
    for ratio in RATIOS:
        kept = n * (1 - ratio)
        removed = round(layers * ratio)
        # a pruned cell: its evaluation (KL against the dense model's stored final states: no dense forward)
        ev_s = seconds(2 * kept * (ev["accuracy"] + ev["perplexity"] + ev["fidelity"] + ev["latency"]), MFU_SCORE) \
            + decode_seconds((n + kept) / 2)
        for method in METHODS:
            plan = plan_forward_tokens(method, layers, removed)
            mfu = MFU_TRAIN if method in ("streamline", "taylor") else MFU_SCORE
            out["cells"][(method, ratio)] = ev_s + seconds(2 * n * plan, mfu)
    return out


def memory(name: str) -> dict[str, float]:
    """Bytes held per stage (bf16 weights), from the model's config and the preset's settings."""
    m = MODELS[name]
    n, layers, hidden = m["params"], m["layers"], m["hidden"]
    weights = BYTES * n
    pruned = weights * (1 - RATIOS[0])
    layer = weights / layers
    calib_states = (layers + 1) * CALIB_TOKENS * hidden * 4  # the boundary states the capture keeps (fp32)
    kv_latency = 2 * layers * m["kv_heads"] * m["head_dim"] * (128 + 64) * 8 * BYTES  # batch 8
    logits_chunk = 32 * 2048 * m["vocab"] * 4 / 8            # eval: logits of one chunk (fp32 softmax)
    fid_states = sum(TOKENS["corpora"].values()) * TOKENIZER_FACTOR[name] * hidden * BYTES
    train_layer = 16 * n / layers                           # fp32 master + AdamW moments of one layer
    train_act = 4 * 256 * hidden * 2 * 34 * layers          # batch 4 x 256 tokens, ~34 values/hidden/layer (bf16)
    return {"weights": weights, "session": weights + pruned, "layer": layer, "calibration": calib_states,
            "kv_latency": kv_latency, "eval_logits": logits_chunk, "fidelity_reference": fid_states,
            "streamline_training": weights + pruned + train_layer + train_act}


def gb(x: float) -> str:
    return f"{x / 1e9:.1f}"


def duration(s: float) -> str:
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.0f} min"


def forwards(name: str) -> float:
    """Forward passes of one cell's evaluation: batches of 32 rows of about 150 tokens."""
    ev = eval_tokens(name)
    return (ev["accuracy"] + ev["perplexity"] + ev["fidelity"]) / (32 * 150)


def stream_seconds(name: str, gpus: int) -> float:
    """Per cell: the seconds spent streaming offloaded weights host-to-GPU (--max-memory beyond the GPUs'
    memory). The session holds the dense model and one pruned copy; each gets half of what the GPUs hold."""
    weights = memory(name)["weights"]
    resident = USABLE * H100_MEM * gpus / 2
    return max(0.0, weights - resident) / PCIE_BYTES_S * forwards(name)


def preset_rows(name: str, gpus: int) -> dict:
    c = cell_costs(name)
    extra = stream_seconds(name, gpus)
    cells = [c["dense_s"] + extra] + [s + extra for s in c["cells"].values()]
    return {"dense": c["dense_s"] + extra, "typical": c["cells"][("shortgpt", 0.125)] + extra,
            "slowest": max(cells), "total": sum(cells), "n": len(cells), "stream": extra, "gpus": gpus}


def render() -> str:
    tok = TOKENS
    lines = ["# Scale plan: the `paper` preset on 7B-70B models", "",
             "Generated by `scripts/scale_plan.py` from `reports/scale-tokens.json` and "
             "`reports/scale-measured.json` (both measured here); every other number is structural (the "
             "harness's defaults) or an assumption stated below. **No GPU was lent to the session that wrote "
             "this page, so the GPU throughput is assumed, not measured**: run `scripts/gpu_check.py` on an H100 "
             "and put what it measures in place of `MFU_SCORE` / `MFU_TRAIN`.", "",
             "## Measured here", ""]
    tasks = tok["tasks"]
    lines += [f"**Evaluation tokens**: every document of the seven tasks, 0-shot, counted with the "
              f"`{tok['tokenizer']}` tokenizer on lm-eval's own requests (`scripts/scale_tokens.py`):", "",
              "| task | documents | requests | tokens, lm-eval (a row per request) | tokens, prefix engine |",
              "|---|---:|---:|---:|---:|"]
    for name, t in tasks.items():
        lines.append(f"| {name} | {t['documents']:,} | {t['requests']:,} | {t['tokens_lm_eval']:,} | "
                     f"{t['tokens_prefix']:,} |")
    tot_l = sum(t["tokens_lm_eval"] for t in tasks.values())
    tot_p = sum(t["tokens_prefix"] for t in tasks.values())
    lines += [f"| **all** | {sum(t['documents'] for t in tasks.values()):,} | "
              f"{sum(t['requests'] for t in tasks.values()):,} | {tot_l:,} | {tot_p:,} |", "",
              "Perplexity and fidelity read the corpora's whole evaluation ranges: "
              + ", ".join(f"{c} {n:,} tokens" for c, n in tok["corpora"].items()) + ".", ""]
    lines += measured_section()
    lines += ["## Assumptions", "",
              f"- H100 SXM: bf16 dense peak {H100_BF16_PEAK / 1e12:.0f} TFLOP/s; scoring reaches {MFU_SCORE:.0%} "
              f"of it (batched forward passes), the small training runs {MFU_TRAIN:.0%}.",
              f"- A decode step reads every weight at {HBM_BYTES_S / 1e12:.1f} TB/s (60 % of HBM3), at least "
              f"{STEP_OVERHEAD_S * 1e3:.0f} ms (HF eager); the latency probe runs 2 batch sizes x 12 runs x 65 "
              "steps for the cell's model and the dense one.",
              "- A forward pass costs 2 x parameters FLOPs per token (attention over <= 2048 tokens adds a few %); "
              "a backward pass twice that.",
              f"- Token counts scale with the tokenizer: x{TOKENIZER_FACTOR['Llama-2-7B']} for Llama-2's 32K "
              f"vocabulary, x{TOKENIZER_FACTOR['Llama-3-8B']} for Llama-3's 128K (against the 49K counting one).",
              f"- Weights beyond the GPUs' memory stream host-to-GPU at {PCIE_BYTES_S / 1e9:.0f} GB/s, once per "
              "forward pass (`--max-memory`, bench/models/offload.py); the dense model and the pruned copy a session "
              "holds each get half of the GPUs' memory.",
              "- A pruned cell's KL uses the dense model's stored final states (no dense forward). The engine's "
              "reuse of dense layer states (a pruned model recomputes only the layers after its first change) is "
              "not counted, so pruned-cell times are upper bounds.", ""]
    lines += ["## Memory per stage (bf16, GB)", "",
              "| model | weights | session: dense + pruned copy | one layer | calibration states (fp32) | "
              "logits of one eval chunk | fidelity: dense final states | latency KV cache (batch 8) | "
              "Streamline training (session + one trained layer + activations) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in MODELS:
        mem = memory(name)
        lines.append(f"| {name} | {gb(mem['weights'])} | {gb(mem['session'])} | {gb(mem['layer'])} | "
                     f"{gb(mem['calibration'])} | {gb(mem['eval_logits'])} | {gb(mem['fidelity_reference'])} | "
                     f"{gb(mem['kv_latency'])} | {gb(mem['streamline_training'])} |")
    lines += ["", f"One H100-80GB holds about {USABLE * H100_MEM / 1e9:.0f} GB: the 7B and 8B sessions fit with "
              "room for every stage; a 70B session (dense + pruned copy, about 265 GB) needs `--max-memory` "
              "across 4 GPUs (`0=74GiB,1=74GiB,2=74GiB,3=74GiB`, the layers split in order, one GPU computing at "
              "a time) or one GPU streaming the rest from host RAM (`0=74GiB,cpu=300GiB`).", "",
              "## Time per cell and cells per GPU-hour", "",
              "| model | GPUs per cell | dense cell | typical pruned cell (ShortGPT, 0.125) | slowest cell | "
              "of which streaming weights | whole preset (21 cells), GPU-hours | cells per GPU-hour |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    rows = []
    for name in MODELS:
        for gpus in ((1,) if name != "Llama-3-70B" else (1, 4)):
            r = preset_rows(name, gpus)
            rows.append((name, r))
            gpu_hours = r["total"] * gpus / 3600
            lines.append(f"| {name} | {gpus} | {duration(r['dense'])} | {duration(r['typical'])} | "
                         f"{duration(r['slowest'])} | {duration(r['stream'])} per cell | {gpu_hours:.1f} | "
                         f"{r['n'] / gpu_hours:.2f} |")
    lines += ["", "The slowest cell is SLEB at ratio 0.25 (a calibration pass per candidate layer per removed layer); "
              "the cheapest are the score-once methods (ShortGPT, angular, last, random), whose cost is their "
              "evaluation.", "",
              "## On a Slurm cluster", "",
              "`--executor slurm` runs one job per cell, so the wall time is the preset's GPU-hours over the GPUs "
              "given to it, bounded below by the slowest cell (plus each job's model load: about a minute for 8B "
              "from a local disk).", "",
              "| model | GPUs per cell | wall time on 8 GPUs | on 32 GPUs | `--time-min` | `--mem-gb` (host) |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, r in rows:
        total_gpu_s = r["total"] * r["gpus"]

        def wall(g, total_gpu_s=total_gpu_s, r=r):
            return max(total_gpu_s / g, r["slowest"])

        host = math.ceil(memory(name)["session"] / 1e9 * (1.2 if r["stream"] else 0.6) + 32)
        lines.append(f"| {name} | {r['gpus']} | {duration(wall(8))} | {duration(wall(32))} | "
                     f"{math.ceil(r['slowest'] / 60 * 2 + 10)} | {host} |")
    lines += ["", "## The `paper` preset, sized from this", "",
              "Its settings (bench/presets.yaml) are the papers' protocol, and this page says they fit: every "
              "document of the seven tasks and the whole corpora at window 2048 cost minutes per cell on one "
              "H100 for 7B-8B models, so no limit is needed; batch 32 keeps an eval chunk's logits at a few GB "
              "with Llama-3's 128K vocabulary; its `slurm` block asks for 1 GPU, 8 CPUs, 64 GB of host memory and an "
              "hour per cell (the slowest 8B cell's estimate three times over, for the assumed throughput's error, "
              "plus the model load); a 70B run adds `--gpus-per-cell 4 --mem-gb 400 --time-min 300 --max-memory "
              "0=74GiB,1=74GiB,2=74GiB,3=74GiB`.", ""]
    return "\n".join(lines) + "\n"


def measured_section() -> list[str]:
    m = MEASURED
    out = [f"**Qwen2.5-Coder-1.5B end to end on this CPU, in memory and under `--max-memory {m['cap']}`** "
           "(fp32, 2 shared cores; the machine ran other jobs, so times are upper bounds): "
           f"{m['summary']}", "",
           "| run | wall time | peak RSS | finished |", "|---|---:|---:|---|"]
    for key, label in (("in_memory_run", "in memory"), ("capped_run", f"--max-memory {m['cap']}")):
        r = m[key]
        wall = f"{r['wall_s']:.0f} s" if r["wall_s"] else "-"
        rss = f"{r['peak_rss_bytes'] / 2**30:.2f} GiB" if r["peak_rss_bytes"] else "-"
        state = "yes" if r["finished"] else f"no: stopped (signal {r.get('killed_by_signal')})"
        out.append(f"| {label} | {wall} | {rss} | {state} |")
    out += ["", "| cell | piqa | arc_easy | winogrande | perplexity (C4) | bits/byte | KL to dense | stability | "
            "log-likelihoods compared | max abs difference | largest relative difference of the others | removed layers |",
            "|---|---|---|---|---|---|---|---|---:|---:|---:|---|"]
    for cell, r in m["cells"].items():
        a, b = r["in_memory"], r["capped"]

        def pair(x, y, fmt="{:.3f}"):
            xs, ys = (fmt.format(x) if x is not None else "-"), (fmt.format(y) if y is not None else "-")
            return xs if xs == ys else f"{xs} / {ys}"

        accs = [pair(a["accuracy"].get(t), b["accuracy"].get(t)) for t in ("piqa", "arc_easy", "winogrande")]
        ppl = pair(a["perplexity"][0] if a["perplexity"] else None, b["perplexity"][0] if b["perplexity"] else None,
                   "{:.4f}")
        stab = pair(a["stability"], b["stability"], "{:.4f}")
        fid = [pair(*(((x["fidelity"] or [{}])[0]).get(k) for x in (a, b)), "{:.4f}")
               for k in ("bits_per_byte", "kl_to_dense")]
        diff = f"{r['max_abs_loglik_diff']:.1e}" if r["max_abs_loglik_diff"] is not None else "-"
        rel = [v for v in (r.get("max_rel_measure_diff") or {}).values()]
        rel_text = "-" if not rel else ("a measure missing in one run" if None in rel else f"{max(rel):.1e}")
        out.append(f"| {cell} | {' | '.join(accs)} | {ppl} | {' | '.join(fid)} | {stab} | {r['logliks']} | {diff} | "
                   f"{rel_text} | {a['removed'] or '-'} |")
    for cell, r in m.get("only_capped", {}).items():
        accs = [f"{r['accuracy'].get(t):.3f}" if r["accuracy"].get(t) is not None else "-"
                for t in ("piqa", "arc_easy", "winogrande")]
        ppl = f"{r['perplexity'][0]:.4f}" if r["perplexity"] else "-"
        stab = f"{r['stability']:.4f}" if r["stability"] is not None else "-"
        out.append(f"| {cell} (capped run only) | {' | '.join(accs)} | {ppl} | - | - | {stab} | {r['logliks']} | - | "
                   f"- | {r['removed'] or '-'} |")
    stages = m.get("stages") or {}
    stopped = not (m["in_memory_run"]["finished"] and m["capped_run"]["finished"])
    if stopped and (stages.get("in_memory") or stages.get("capped")):  # what a stopped run's log says it did
        out += ["", "The dense cell's stages as each run logged them (score as logged, seconds):", "",
                "| stage | in memory | capped | seconds in memory | seconds capped |", "|---|---|---|---:|---:|"]
        a, b = stages.get("in_memory", {}), stages.get("capped", {})
        for stage in dict.fromkeys([*b, *a]):
            x, y = a.get(stage), b.get(stage)

            def val(r):
                return f"{r['metric']} {r['value']:g}" if r and "value" in r else ("-" if r is None else "")

            out.append(f"| {stage} | {val(x)} | {val(y)} | {x['seconds']:.0f} | {y['seconds']:.0f} |" if x and y else
                       f"| {stage} | {val(x)} | {val(y)} | {x['seconds'] if x else '-'} | "
                       f"{y['seconds'] if y else '-'} |")
    out += ["", "(one number where both runs agree to the digits shown; `in memory / capped` where they do not)", "",
            "What streaming costs here, per stage (seconds, in memory / capped; the capped run re-reads every "
            "offloaded weight from the page cache and converts it from bf16 on each forward pass):", "",
            "| cell | stage | in memory | capped | ratio |", "|---|---|---:|---:|---:|"]
    for cell, r in m.get("only_capped", {}).items():
        for stage, secs in (r["timings"] or {}).items():
            out.append(f"| {cell} | {stage.removesuffix('_s')} | - | {secs:.0f} | - |")
    totals: dict[str, list[float]] = {}
    for cell, r in m["cells"].items():
        a, b = r["in_memory"]["timings"] or {}, r["capped"]["timings"] or {}
        for stage in a:
            if stage in b and a[stage]:
                out.append(f"| {cell} | {stage.removesuffix('_s')} | {a[stage]:.0f} | {b[stage]:.0f} | "
                           f"{b[stage] / a[stage]:.1f}x |")
                if stage != "total_s":
                    pair_s = totals.setdefault(stage.removesuffix("_s"), [0.0, 0.0])
                    pair_s[0], pair_s[1] = pair_s[0] + a[stage], pair_s[1] + b[stage]
    if len(m["cells"]) > 1:
        out += ["", "Each stage summed over the cells both runs finished:", "",
                "| stage | in memory | capped | ratio |", "|---|---:|---:|---:|"]
        for stage, (x, y) in sorted(totals.items(), key=lambda kv: -kv[1][1]):
            out.append(f"| {stage} | {x:.0f} | {y:.0f} | {y / x:.1f}x |")
    out.append("")
    return out


if __name__ == "__main__":
    (ROOT / "reports/scale.md").write_text(render())
    print("wrote reports/scale.md")
