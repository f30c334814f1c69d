"""The GPU check: prune, evaluate, time, meter memory, train a replacement module and LoRA-heal on one GPU,
and compare with the same run on the CPU. Ready to run on a machine that has torch, transformers, accelerate
and peft (no lm-eval, no datasets: this script imports neither, and refuses to if they are imported).

    PYTHONPATH=. python scripts/gpu_check.py --out gpu-check        # CPU reference + cuda:0, one JSON
    PYTHONPATH=. python scripts/gpu_check.py --out cpu-only --devices cpu   # the CPU half alone (here)

Everything runs on a tiny random Llama built in-process (8 layers, hidden 256; nothing downloaded, nothing
carried but the repository), on a generated text. Per device it runs:
- the dense model: perplexity on held-out windows, per-choice log-likelihoods of 24 synthetic two-choice
  items, logits of a fixed batch;
- four pruned cells: ShortGPT (removal, calibration scoring), LaCo (in-place merge), LLM-Streamline
  (a trained replacement layer), ShortGPT + heal=lora (LoRA healing merged into the weights); each pruned
  copy is checked to have every tensor on the device, then evaluated like the dense model;
- latency (prefill, time to first token, decode tokens/s with the KV cache; timers synchronise the device)
  and memory from the device's own counters (peak allocated, the KV cache one prefill allocates, compared
  with the config's count), for the dense and a pruned model;
- on a GPU, bf16 and fp16 passes (perplexity within a few % of fp32) and the model dispatched across GPU,
  CPU and disk by --max-memory (logits equal to the model in GPU memory).
Then it compares the GPU's fp32 numbers with the CPU's: the same layers removed, perplexities and
log-likelihoods within float tolerance, training losses close. It writes <out>/gpu_check.json and prints
one line per check; exit 0 when every check passes. Also runs `pytest -m gpu tests/test_gpu.py` when pytest
is installed. About a minute on the CPU half; well under 10 minutes in all.
"""

from __future__ import annotations

import argparse
import importlib.abc
import json
import math
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
FORBIDDEN = ("lm_eval", "datasets")  # absent from the GPU machine's image


class _Forbid(importlib.abc.MetaPathFinder):
    """Fail loudly if anything imports what the GPU machine lacks (so a CPU run proves the script runs there)."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            raise ImportError(f"gpu_check must not import {name}: the GPU machine's image lacks it")
        return None


sys.meta_path.insert(0, _Forbid())

import torch  # noqa: E402

N_LAYERS, HIDDEN = 8, 256
CELLS = [  # (label, method, params, layers removed)
    ("shortgpt", "shortgpt", {}, 2),
    ("laco", "laco", {"layers_per_merge": 2, "n_sentences": 4, "threshold": 0.0}, 2),
    ("streamline", "streamline", {"train_samples": 32, "train_seq_len": 64, "train_batch": 8}, 2),
    ("shortgpt+lora", "shortgpt", {"heal": "lora", "lora_samples": 32, "lora_seq_len": 64, "lora_batch": 8,
                                   "lora_lr": 1e-3}, 2),
]
SUBJECTS = ["the mill", "the baker", "the ferry", "the school", "the market", "the tower"]
PLACES = ["Pford", "Qford", "Rford", "Sford", "Tford", "Uford"]


def _text() -> str:
    return "\n\n".join(f"Entry {i}: {SUBJECTS[i % 6]} by the river ground {i % 9} sacks of wheat each morning "
                       f"before the market opened in the square of {PLACES[(i * 5) % 6]}." for i in range(400))


def _items() -> list[tuple[str, list[str], int]]:
    return [(f"Entry {i}: {SUBJECTS[i % 6]} by the river ground", [f" {i % 9} sacks of wheat", " a blue whale"], 0)
            for i in range(24)]


def build(folder: Path) -> None:
    """A tiny random Llama with the test suite's BPE tokenizer, saved as a Hugging Face folder."""
    from tiny import tiny_tokenizer
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig(vocab_size=512, hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=N_LAYERS,
                      num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=512,
                      tie_word_embeddings=False, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    (folder / "text.txt").write_text(_text())


# --------------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(model, tok) -> dict:
    """Perplexity on fixed windows of the text's tail, per-choice log-likelihoods, a logits checksum."""
    device = next(model.parameters()).device
    ids = tok(_text()[-6000:], return_tensors="pt").input_ids[:, : 4 * 128].reshape(4, 128).to(device)
    out = model(input_ids=ids)
    logp = torch.log_softmax(out.logits[:, :-1].float(), -1)
    nll = -logp.gather(-1, ids[:, 1:, None]).mean()
    lls = []
    for context, choices, _ in _items():
        ctx = tok(context).input_ids
        for choice in choices:
            cont = tok(choice).input_ids
            full = torch.tensor([ctx + cont], device=device)
            lp = torch.log_softmax(model(input_ids=full).logits[0, :-1].float(), -1)
            lls.append(float(sum(lp[len(ctx) - 1 + j, t] for j, t in enumerate(cont))))
    acc = sum(lls[2 * i] > lls[2 * i + 1] for i in range(len(lls) // 2)) / (len(lls) // 2)
    return {"ppl": math.exp(float(nll)), "logliks": lls, "acc": acc,
            "logits_sum": float(out.logits.float().sum()), "logits_abs": float(out.logits.float().abs().mean())}


def _devices(model) -> set[str]:
    return {str(t.device) for t in [*model.parameters(), *model.buffers()]}


def _latency(models, device) -> list[dict]:
    from bench.evaluate.timing import measure_latencies

    rs = measure_latencies(models, batch_size=2, prompt_tokens=64, new_tokens=16, warmup=2, repeats=5)
    return [{k: getattr(r, k) for k in ("prefill_ms", "ttft_ms", "decode_tokens_per_s", "peak_memory_bytes",
                                        "peak_memory_kind", "kv_cache_bytes", "kv_cache_measured_bytes",
                                        "kv_cache_measured_kind", "device", "dtype", "parameters")} for r in rs]


def run_device(folder: Path, device: str, dtype: str, full: bool) -> dict:
    """Everything on one device and dtype (`full`: the pruned cells and latency too)."""
    import methods
    from bench.data.calibration import Calibration, CalibSpec
    from bench.data.training_text import TrainData, TrainDataSpec
    from bench.models import zoo
    from bench.run.pipeline import prune
    from methods.base import Budget

    t0 = time.perf_counter()
    model, tok = zoo.load(str(folder), device=device, dtype=dtype)
    text = str(folder / "text.txt")
    out = {"device": device, "dtype": dtype, "dense": evaluate(model, tok), "cells": {}}
    if not full:
        out["seconds"] = time.perf_counter() - t0
        return out
    calib = Calibration(CalibSpec(source=text, n_samples=16, seq_len=64, batch_size=8), model, tok)
    data = TrainData(TrainDataSpec(source=text), tok)
    pruned_for_latency = None
    for label, name, params, layers in CELLS:
        start = time.perf_counter()
        result = prune(model, methods.create(name, params), Budget(layers=layers), calib, copy_model=True,
                       heal_data=data)
        training = result.plan.cost.get("training") or {}
        out["cells"][label] = {
            "removed": result.plan.removed_original, "ops": result.plan.ops, "seconds": time.perf_counter() - start,
            "devices": sorted(_devices(result.model)), **evaluate(result.model, tok),
            "training": {k: training.get(k) for k in ("steps", "tokens", "wall_seconds", "peak_memory_bytes",
                                                      "memory_source", "loss_first", "loss_last", "device")}
            if training else None}
        if label == "shortgpt":
            pruned_for_latency = result.model
        else:
            del result
    dense_lat, pruned_lat = _latency([model, pruned_for_latency], device)
    out["latency"] = {"dense": dense_lat, "pruned": pruned_lat}
    out["seconds"] = time.perf_counter() - t0
    return out


def run_dispatched(folder: Path, device: str) -> dict:
    """The model dispatched across the GPU, CPU and disk by --max-memory, against the model in GPU memory."""
    from bench.models import arch, offload, zoo

    plain, tok = zoo.load(str(folder), device=device, dtype="float32")
    per_layer = arch.layer_parameter_counts(plain)[0] * 4
    head = plain.get_input_embeddings().weight.numel() * 4
    index = torch.device(device).index or 0
    cap = f"{index}={2 * head + 2 * per_layer}B,cpu={2 * per_layer}B"
    with tempfile.TemporaryDirectory() as tmp:
        disp, _ = zoo.load(str(folder), dtype="float32", max_memory=cap, offload_folder=tmp)
        ids = tok(["Entry 3: the ferry by the river ground"], return_tensors="pt").input_ids.to(device)
        with torch.no_grad():
            diff = float((disp(ids).logits - plain(ids).logits).abs().max())
        return {"max_memory": cap, "where": offload.describe(disp)["bytes_by_device"],
                "placed": sorted(map(str, set(disp.hf_device_map.values()))), "max_abs_logit_diff": diff}


# --------------------------------------------------------------------------------------- comparison


def compare(cpu: dict, gpu: dict, half: dict[str, dict], disp: dict | None) -> list[tuple[str, bool, str]]:
    checks = []

    def check(name, ok, detail):
        checks.append((name, bool(ok), detail))

    def rel(a, b):
        return abs(a - b) / max(abs(b), 1e-12)

    check("dense perplexity cuda fp32 = cpu fp32", rel(gpu["dense"]["ppl"], cpu["dense"]["ppl"]) < 1e-3,
          f"{gpu['dense']['ppl']:.5f} vs {cpu['dense']['ppl']:.5f}")
    d = max(abs(a - b) for a, b in zip(gpu["dense"]["logliks"], cpu["dense"]["logliks"], strict=True))
    check("dense per-choice log-likelihoods cuda = cpu", d < 1e-3, f"max |diff| {d:.2e}")
    for label in cpu["cells"]:
        g, c = gpu["cells"][label], cpu["cells"][label]
        check(f"{label}: same layers removed", g["removed"] == c["removed"], f"{g['removed']} vs {c['removed']}")
        check(f"{label}: every tensor on {gpu['device']}", g["devices"] == [gpu["device"]], str(g["devices"]))
        tol = 2e-2 if g["training"] else 1e-3  # training: GPU kernels and reduction order differ over the steps
        check(f"{label}: perplexity cuda = cpu (rel {tol:g})", rel(g["ppl"], c["ppl"]) < tol,
              f"{g['ppl']:.5f} vs {c['ppl']:.5f}")
        if g["training"]:
            t = g["training"]
            check(f"{label}: training metered by the device's counter",
                  t["memory_source"] == "torch.cuda.max_memory_allocated" and t["peak_memory_bytes"] > 0,
                  f"{t['memory_source']}, peak {t['peak_memory_bytes']}")
            check(f"{label}: final training loss cuda ~ cpu", rel(t["loss_last"], c["training"]["loss_last"]) < 2e-2,
                  f"{t['loss_last']:.4f} vs {c['training']['loss_last']:.4f}")
    for which in ("dense", "pruned"):
        lat = gpu["latency"][which]
        check(f"latency {which}: device counters", lat["peak_memory_kind"] == "cuda_max_allocated"
              and lat["kv_cache_measured_kind"] == "cuda_memory_allocated", str(lat["peak_memory_kind"]))
        kv, config_kv = lat["kv_cache_measured_bytes"], lat["kv_cache_bytes"] * 64 // (64 + 16)
        check(f"latency {which}: measured KV cache = config's count (prompt)",
              kv is not None and config_kv <= kv <= config_kv * 1.25 + 65536, f"{kv} vs {config_kv}")
        check(f"latency {which}: positive timings", lat["prefill_ms"] > 0 and lat["decode_tokens_per_s"] > 0,
              f"prefill {lat['prefill_ms']:.2f} ms, decode {lat['decode_tokens_per_s']:.0f} tok/s")
    speedup = gpu["latency"]["dense"]["prefill_ms"] / gpu["latency"]["pruned"]["prefill_ms"]
    check("pruned prefill not slower than dense on the GPU (6 of 8 layers)", speedup > 0.9, f"speed-up {speedup:.2f}")
    for dtype, res in half.items():
        r = rel(res["dense"]["ppl"], gpu["dense"]["ppl"])
        check(f"{dtype} on cuda: perplexity within 3 % of fp32", r < 0.03, f"{res['dense']['ppl']:.4f} ({r:.2%})")
    if disp is not None:
        check("dispatched across GPU, CPU and disk = GPU memory", disp["max_abs_logit_diff"] < 1e-4
              and {"disk", "cpu"} <= set(disp["placed"]) and len(disp["placed"]) == 3,
              f"max |diff| {disp['max_abs_logit_diff']:.2e}, {disp['placed']}, bytes {disp['where']}")
    return checks


def _pytest_gpu() -> dict | None:
    try:
        import pytest  # noqa: F401
    except ImportError:
        return None
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "tests/test_gpu.py", "-q", "-p", "no:cacheprovider"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    return {"returncode": proc.returncode, "tail": proc.stdout[-2000:]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for gpu_check.json")
    p.add_argument("--devices", default="cpu,cuda:0", help="cpu, and the GPU to check (default cpu,cuda:0)")
    p.add_argument("--threads", type=int, default=4, help="CPU threads for the CPU reference (default 4)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    gpus = [d for d in devices if d != "cpu"]
    if gpus and not torch.cuda.is_available():
        print(f"no CUDA device here: running the CPU half only (asked for {', '.join(gpus)})")
        gpus = []
    report = {"python": platform.python_version(), "torch": torch.__version__,
              "cuda": torch.version.cuda, "gpu_name": torch.cuda.get_device_name(0) if gpus else None}
    import accelerate
    import peft
    import transformers

    report |= {"transformers": transformers.__version__, "accelerate": accelerate.__version__,
               "peft": peft.__version__}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "tiny-llama"
        build(folder)
        report["cpu"] = run_device(folder, "cpu", "float32", full=True)
        checks = []
        for gpu in gpus[:1]:
            torch.backends.cuda.matmul.allow_tf32 = False  # fp32 on the GPU means fp32 (compared with the CPU)
            torch.backends.cudnn.allow_tf32 = False
            report["gpu"] = run_device(folder, gpu, "float32", full=True)
            report["half"] = {dt: run_device(folder, gpu, dt, full=False) for dt in ("bfloat16", "float16")}
            report["bf16_cells"] = run_device(folder, gpu, "bfloat16", full=True)["cells"]
            report["dispatched"] = run_dispatched(folder, gpu)
            checks = compare(report["cpu"], report["gpu"], report["half"], report["dispatched"])
    report["pytest_gpu"] = _pytest_gpu() if gpus else None
    report["checks"] = [{"check": n, "ok": ok, "detail": d} for n, ok, d in checks]
    report["seconds"] = time.perf_counter() - start
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    for label, cell in report["cpu"]["cells"].items():
        print(f"cpu  {label:14s} removed {cell['removed']} ppl {cell['ppl']:.4f} in {cell['seconds']:.1f} s")
    for n, ok, d in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {n}: {d}")
    if report["pytest_gpu"] is not None:
        print(f"pytest -m gpu: exit {report['pytest_gpu']['returncode']}\n{report['pytest_gpu']['tail'][-400:]}")
    print(f"wrote {out / 'gpu_check.json'} in {report['seconds']:.0f} s")
    failed = [n for n, ok, _ in checks if not ok]
    pytest_failed = report["pytest_gpu"] is not None and report["pytest_gpu"]["returncode"] != 0
    return 1 if failed or pytest_failed else 0


if __name__ == "__main__":
    sys.exit(main())
