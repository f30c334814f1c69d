"""Latency and size measurements on a tiny model: positive numbers, raw repeats, tied weights once."""

from __future__ import annotations

import json
import statistics

import pytest
import torch
from tiny import tiny_model

from bench.evaluate.timing import LatencyResult, measure_latency, parameter_size


def test_latency_numbers_and_repeats():
    model, _ = tiny_model("llama")
    r = measure_latency(model, batch_size=2, prompt_tokens=12, new_tokens=5, warmup=1, repeats=3,
                        identity={"model": "tiny"})
    assert r.prefill_ms > 0 and r.ttft_ms > 0 and r.decode_tokens_per_s > 0 and r.generate_s > 0
    for runs, median in ((r.prefill_ms_runs, r.prefill_ms), (r.ttft_ms_runs, r.ttft_ms),
                         (r.decode_tokens_per_s_runs, r.decode_tokens_per_s), (r.generate_s_runs, r.generate_s)):
        assert len(runs) == 3 and all(x > 0 for x in runs) and median == pytest.approx(statistics.median(runs))
    assert r.peak_memory_bytes > 0 and r.peak_memory_kind == "process_peak_rss"
    assert (r.device, r.dtype, r.torch_threads) == ("cpu", "float32", torch.get_num_threads())
    assert r.identity == {"model": "tiny"}
    stored = json.loads(json.dumps(r.to_dict()))   # the record part: no provenance or identity
    assert "provenance" not in stored and "identity" not in stored and stored["weights_bytes"] == r.checkpoint_bytes
    assert LatencyResult.from_dict(stored).to_dict() == r.to_dict()


def test_generate_produces_exactly_the_new_tokens(monkeypatch):
    model, _ = tiny_model("gpt2")
    lengths = []
    generate = model.generate

    def spy(**kwargs):
        out = generate(**kwargs)
        lengths.append(out.shape[1] - kwargs["input_ids"].shape[1])
        return out

    monkeypatch.setattr(model, "generate", spy)
    measure_latency(model, batch_size=1, prompt_tokens=4, new_tokens=6, warmup=0, repeats=2)
    assert sorted(set(lengths)) == [1, 6]     # time to first token: 1; decode: exactly 6 (eos ignored)


def test_tied_weights_are_counted_once():
    model, _ = tiny_model("llama")                    # tie_word_embeddings=True
    assert model.get_input_embeddings().weight is model.get_output_embeddings().weight
    count, nbytes = parameter_size(model)
    naive = sum(p.numel() for p in model.state_dict().values() if p.is_floating_point())
    embed = model.get_input_embeddings().weight.numel()
    assert count == sum(p.numel() for p in model.parameters()) == naive - embed
    assert nbytes == count * 4
    half, _ = tiny_model("llama", dtype=torch.bfloat16)
    assert parameter_size(half) == (count, count * 2)


def test_untied_model_counts_both_matrices():
    model, _ = tiny_model("mistral")                  # untied lm_head
    count, _ = parameter_size(model)
    assert count == sum(p.numel() for p in model.parameters())
    assert model.get_input_embeddings().weight.data_ptr() != model.get_output_embeddings().weight.data_ptr()


def test_interleaved_latencies_alternate_repeats(monkeypatch):
    """measure_latencies runs model A's repeat, then B's, then A's ...: drift moves both alike."""
    from bench.evaluate import timing

    a, _ = tiny_model("llama")
    b, _ = tiny_model("llama", n_layers=1)
    order = []
    for name, model in (("a", a), ("b", b)):
        forward = model.forward

        def spy(*args, _name=name, _forward=forward, **kwargs):
            order.append(_name)
            return _forward(*args, **kwargs)

        monkeypatch.setattr(model, "forward", spy)
    ra, rb = timing.measure_latencies([a, b], prompt_tokens=6, new_tokens=3, warmup=1, repeats=2)
    # per model and round: warm-up (prefill + 3-token generate) or repeat (prefill + 1 + 3 tokens)
    runs = [k for i, k in enumerate(order) if i == 0 or order[i - 1] != k]
    assert runs == ["a", "b"] * 3
    assert len(ra.prefill_ms_runs) == len(rb.prefill_ms_runs) == 2
    assert ra.parameters > rb.parameters and ra.decode_tokens_per_s > 0 and rb.decode_tokens_per_s > 0


def test_kv_cache_bytes_by_hand_and_against_a_real_cache():
    from bench.evaluate.timing import kv_cache_bytes

    model, _ = tiny_model("llama")
    cfg = model.config
    kv_heads = cfg.num_key_value_heads or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    expected = 2 * cfg.num_hidden_layers * kv_heads * head_dim * 10 * 3 * 4   # fp32
    assert kv_cache_bytes(model, tokens=10, batch=3) == expected
    with torch.no_grad():
        cache = model(torch.zeros(3, 10, dtype=torch.long), use_cache=True).past_key_values
    real = sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))
    assert real == expected
    r = measure_latency(model, batch_size=2, prompt_tokens=6, new_tokens=3, warmup=0, repeats=1)
    assert r.kv_cache_bytes == kv_cache_bytes(model, 9, 2)


@pytest.mark.parametrize("fam", ["llama", "gemma3", "gpt2"])
def test_kv_cache_bytes_count_only_layers_that_keep_their_attention(fam):
    """A layer whose attention sublayer was dropped stores no keys or values: config count and real cache."""
    from bench.evaluate.timing import kv_cache_bytes, measured_kv_cache_bytes
    from bench.models import sublayer

    model, _ = tiny_model(fam)
    dense = kv_cache_bytes(model, tokens=10, batch=2)
    assert measured_kv_cache_bytes(model, tokens=10, batch=2) == dense
    sublayer.drop_sublayers(model, attn=[0, 2], mlp=[])
    assert kv_cache_bytes(model, tokens=10, batch=2) == dense // 2
    assert measured_kv_cache_bytes(model, tokens=10, batch=2) == dense // 2


def test_measured_kv_cache_is_the_cache_the_prefill_returns():
    """Read off the device (here: the returned cache's tensors; on CUDA the allocator, tests/test_gpu.py)."""
    from bench.evaluate.timing import kv_cache_bytes

    model, _ = tiny_model("llama")
    r = measure_latency(model, batch_size=2, prompt_tokens=6, new_tokens=3, warmup=0, repeats=1)
    assert r.kv_cache_measured_kind == "cache_tensors"
    assert r.kv_cache_measured_bytes == kv_cache_bytes(model, 6, 2)   # the prompt's cache, by the config too
