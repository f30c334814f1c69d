"""GPU paths (marked `gpu`: skipped where CUDA is absent, so `pytest -m gpu` collects and skips them on CPU).

What they pin down on one CUDA device: timers synchronise the device (a timed call includes the kernels it
queued), memory comes from the device's own counters (peak allocated, the KV cache from the allocator),
bf16 and fp16 load and score on CUDA, an explicit `cuda:N` is honoured, nothing is left on the wrong device
after pruning, training and healing, and a model dispatched across GPU, CPU and disk scores like the one in GPU
memory. scripts/gpu_check.py runs the same paths end to end with timings and compares them with the CPU."""

from __future__ import annotations

import pytest
import torch
from tiny import tiny_config, tiny_tokenizer
from transformers import AutoModelForCausalLM

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

TEXT = "\n\n".join(f"Entry {i}: the mill by the river ground {i % 9} sacks of wheat each morning before the market "
                   f"opened in the square of {'PQRSTU'[i % 6]}ford." for i in range(100))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-llama")
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(tiny_config("llama", 6), dtype=torch.float32).save_pretrained(out)
    tiny_tokenizer().save_pretrained(out)
    (out / "text.txt").write_text(TEXT)
    return out


def _devices(model) -> set[str]:
    return {str(t.device) for t in [*model.parameters(), *model.buffers()]}


def test_timer_synchronises_the_device():
    from bench.evaluate.timing import _timed

    a = torch.randn(4096, 4096, device="cuda")
    queued = _timed(lambda: [a @ a for _ in range(20)], torch.device("cuda"))
    torch.cuda.synchronize()
    assert queued > 1e-3   # without the synchronisation the call returns as soon as the kernels are queued


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_loads_scores_and_measures_on_cuda(folder, dtype):
    from bench.evaluate.timing import kv_cache_bytes, measure_latency
    from bench.models import zoo

    model, tok = zoo.load(str(folder), device="cuda:0", dtype=dtype)
    assert _devices(model) == {"cuda:0"} and str(next(model.parameters()).dtype) == f"torch.{dtype}"
    r = measure_latency(model, batch_size=2, prompt_tokens=16, new_tokens=4, warmup=1, repeats=2)
    assert r.peak_memory_kind == "cuda_max_allocated" and r.peak_memory_bytes > 0
    assert r.kv_cache_measured_kind == "cuda_memory_allocated"
    # the allocator rounds up to its blocks: within one 512-byte block per tensor of the config's count
    expected = kv_cache_bytes(model, 16, 2)
    assert expected <= r.kv_cache_measured_bytes <= expected + 2 * model.config.num_hidden_layers * 512


def test_prune_train_heal_stay_on_the_device(folder):
    import methods
    from bench.data.calibration import Calibration, CalibSpec
    from bench.data.training_text import TrainData, TrainDataSpec
    from bench.models import zoo
    from bench.run.pipeline import prune
    from methods.base import Budget

    model, tok = zoo.load(str(folder), device="cuda:0", dtype="bfloat16")
    calib = Calibration(CalibSpec(source=str(folder / "text.txt"), n_samples=4, seq_len=16), model, tok)
    data = TrainData(TrainDataSpec(source=str(folder / "text.txt")), tok)
    for name, params in (("streamline", {"train_samples": 8, "train_seq_len": 16, "train_batch": 4}),
                         ("shortgpt", {"heal": "lora", "lora_samples": 8, "lora_seq_len": 16, "lora_batch": 4})):
        result = prune(model, methods.create(name, params), Budget(layers=2), calib, copy_model=True,
                       heal_data=data)
        assert _devices(result.model) == {"cuda:0"}, name
        cost = result.plan.cost["training"]
        assert cost["device"] == "cuda:0" and cost["memory_source"] == "torch.cuda.max_memory_allocated"


def test_dispatched_across_gpu_cpu_and_disk_scores_like_gpu_memory(folder, tmp_path):
    from bench.models import arch, zoo

    plain, tok = zoo.load(str(folder), device="cuda:0", dtype="float32")
    per_layer = arch.layer_parameter_counts(plain)[0] * 4
    embed = plain.get_input_embeddings().weight.numel() * 4
    cap = f"0={embed + 2 * per_layer}B,cpu={2 * per_layer}B"
    disp, _ = zoo.load(str(folder), dtype="float32", max_memory=cap, offload_folder=str(tmp_path))
    placed = set(disp.hf_device_map.values())
    assert {"disk", "cpu"} <= placed and placed - {"disk", "cpu"}, placed   # GPU, CPU and disk
    ids = tok(["The mill by the river"], return_tensors="pt").input_ids.to("cuda:0")
    with torch.no_grad():
        torch.testing.assert_close(disp(ids).logits, plain(ids).logits, rtol=1e-5, atol=1e-5)
