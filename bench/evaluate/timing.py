"""Latency and size: prefill, time to first token, decode tokens/s with the KV cache, peak memory.

Timing hygiene as in nanoGPT's bench.py: warm-up runs first, the device synchronized around every clock
read, the median of `repeats` reported and every raw repeat kept. Inputs are seeded random token ids
(latency does not depend on their values). Per repeat:

- prefill: one forward over (batch, prompt) building the KV cache;
- time to first token: `generate` of exactly one new token (prefill + the first decode step);
- decode: `generate` of exactly `new_tokens` tokens (min_new_tokens = max_new_tokens, greedy), and
  decode tokens/s = batch * (new_tokens - 1) / (that time - the repeat's time to first token).

Peak memory is CUDA's max allocated since the start of this measurement; on CPU it is the process's
peak resident set (a lifetime high-water mark, so it includes whatever the process did before).
Parameters count tied (shared) tensors once; checkpoint bytes are those parameters in their dtype (the
weights' memory). The KV cache's bytes for the probe (batch x (prompt + new) tokens) are computed from the
config: 2 (keys, values) x decoder layers x key/value heads x head dim x tokens x batch x element size, an
upper bound where some layers use a sliding window shorter than the probe. The cache one prefill of the
prompt really allocates is also measured: CUDA's allocator count (`torch.cuda.memory_allocated`) around it,
elsewhere the bytes of the returned cache's tensors.

`LatencyResult` is the record part `latency` (bench.metrics.latency registers it). Importing this module
imports no torch: `bench report` reads the record type without it.
"""

from __future__ import annotations

import inspect
import logging
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.core.record import Part

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)


@dataclass
class LatencyResult(Part):
    """One model's timings and sizes at one batch size: the record part `latency` (the latency evaluator adds
    the paired dense timings, the speed-ups with their intervals, every batch size's fields and the host's
    state)."""

    optional = ("dense_paired", "decode_speedup_vs_dense", "prefill_speedup_vs_dense", "decode_speedup_ci",
                "prefill_speedup_ci", "batches", "kv_cache_bytes", "weights_bytes", "host",   # pruned / newer
                "kv_cache_measured_bytes", "kv_cache_measured_kind")
    transient = ("provenance", "identity")

    batch_size: int | None = None
    prompt_tokens: int | None = None
    new_tokens: int | None = None
    warmup: int | None = None
    repeats: int | None = None
    prefill_ms: float | None = None
    ttft_ms: float | None = None
    decode_tokens_per_s: float | None = None
    generate_s: float | None = None
    prefill_ms_runs: list[float] = field(default_factory=list)
    ttft_ms_runs: list[float] = field(default_factory=list)
    decode_tokens_per_s_runs: list[float] = field(default_factory=list)
    generate_s_runs: list[float] = field(default_factory=list)
    peak_memory_bytes: int | None = None
    peak_memory_kind: str | None = None          # "cuda_max_allocated" | "process_peak_rss"
    parameters: int | None = None                # tied weights counted once
    checkpoint_bytes: int | None = None          # those parameters in their dtype
    device: str | None = None
    dtype: str | None = None
    torch_threads: int | None = None
    seed: int | None = None
    weights_bytes: int | None = None             # = checkpoint_bytes
    kv_cache_bytes: int | None = None  # the probe's KV cache, from the config (None where it has no such fields)
    # the KV cache one prefill of the prompt really allocates: CUDA's allocator count, elsewhere the cache's
    # tensors (None where the model returns no cache it can read)
    kv_cache_measured_bytes: int | None = None
    kv_cache_measured_kind: str | None = None    # "cuda_memory_allocated" | "cache_tensors"
    dense_paired: dict[str, Any] | None = None   # the dense model's timings, measured interleaved with these
    decode_speedup_vs_dense: float | None = None
    prefill_speedup_vs_dense: float | None = None
    decode_speedup_ci: dict[str, Any] | None = None   # {estimate, low, high, repeats}
    prefill_speedup_ci: dict[str, Any] | None = None
    batches: dict[str, Any] | None = None        # batch size -> the same fields, when several were measured
    host: dict[str, Any] | None = None           # load average before/after, usable CPUs, CPU model, busy
    provenance: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)

    @property
    def busy(self) -> bool:
        """Measured while other work loaded the host (`host_state`): its times and speed-up are not comparable."""
        return bool((self.host or {}).get("busy") or self.unknown.get("busy"))   # (or a record's own older field)

    def by_batch(self) -> dict[int, dict[str, Any]]:
        """batch size -> that batch size's fields (this part alone when one batch size was measured)."""
        if self.batches:
            return {int(b): part for b, part in self.batches.items()}
        return {int(self.batch_size): self.to_dict()} if self.batch_size else {}

    def batch_fields(self) -> dict[str, Any]:
        """This batch size's fields as `batches` keeps them (the KV-cache sizes even where None)."""
        return {"kv_cache_bytes": None, "kv_cache_measured_bytes": None, "kv_cache_measured_kind": None,
                **self.to_dict()}


def parameter_size(model: torch.nn.Module) -> tuple[int, int]:
    """(parameters, bytes) with tensors that share storage (tied embeddings) counted once."""
    seen, count, nbytes = set(), 0, 0
    for p in model.parameters():
        key = ("meta", id(p)) if p.is_meta else (p.untyped_storage().data_ptr(), p.storage_offset(), tuple(p.shape))
        if key not in seen:  # an offloaded (meta) parameter has no storage: its identity
            seen.add(key)
            count += p.numel()
            nbytes += p.numel() * p.element_size()
    return count, nbytes


def kv_cache_bytes(model, tokens: int, batch: int) -> int | None:
    """Bytes of the KV cache for `batch` sequences of `tokens` tokens, from the model's config (None when the
    config does not say how many layers, heads and head dims it has)."""
    cfg = model.config
    cfg = getattr(cfg, "text_config", None) or cfg
    layers, heads = getattr(cfg, "num_hidden_layers", None), getattr(cfg, "num_attention_heads", None)
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or (cfg.hidden_size // heads if heads and getattr(cfg, "hidden_size", None)
                                                  else None)
    if not (layers and kv_heads and head_dim):
        return None
    layers -= _attention_dropped_layers(model)
    element = next(model.parameters()).element_size()
    return int(2 * layers * kv_heads * head_dim * tokens * batch * element)


def _attention_dropped_layers(model) -> int:
    """Decoder layers whose attention sublayer was dropped (bench.models.sublayer marks them): they hold no KV cache."""
    from bench.models import arch

    try:
        return sum(1 for layer in arch.decoder_layers(model) if getattr(layer, "attention_dropped", False))
    except Exception:  # no recognisable layer list: count every layer, as the config says
        return 0


def measured_kv_cache_bytes(model, tokens: int, batch: int = 1, seed: int = 0) -> int:
    """Bytes the model's KV cache actually holds after a prefill of `batch` x `tokens` seeded token ids
    (the keys and values of every cache layer; dropped attentions store none)."""
    import torch

    device = next(model.parameters()).device
    vocab = model.get_input_embeddings().weight.shape[0]
    ids = torch.randint(0, vocab, (batch, tokens), generator=torch.Generator().manual_seed(seed)).to(device)
    with torch.inference_mode():
        out = model(input_ids=ids, use_cache=True)
    cache = getattr(out, "cache", None) or out.past_key_values
    total = 0
    for layer in cache.layers:
        for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()
    return total


def _cache_tensors(cache) -> list[torch.Tensor]:
    """The key and value tensors of a transformers cache object (DynamicCache's layers, or legacy tuples)."""
    import torch

    layers = getattr(cache, "layers", None)
    if layers is not None:
        return [t for layer in layers for t in (getattr(layer, "keys", None), getattr(layer, "values", None))
                if isinstance(t, torch.Tensor)]
    if isinstance(cache, tuple | list):
        return [t for pair in cache for t in pair if isinstance(t, torch.Tensor)]
    return []


def measured_kv_cache(model, ids: torch.Tensor) -> tuple[int | None, str | None]:
    """The KV cache one prefill of `ids` allocates, read off the device: on CUDA the allocator's bytes held
    after the prefill with its cache kept, less those before and less the kept (last-position) logits; on other
    devices the bytes of the cache's tensors."""
    import torch

    from bench.core.device import is_cuda, synchronize

    device = ids.device
    cuda = is_cuda(device)
    if cuda:
        synchronize(device)
        before = torch.cuda.memory_allocated(device)
    kwargs = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True, **kwargs)
    cache = out.get("cache", out.get("past_key_values"))  # transformers 5 names it `cache`
    tensors = _cache_tensors(cache)
    if cuda:
        synchronize(device)
        held = torch.cuda.memory_allocated(device) - before - out.logits.numel() * out.logits.element_size()
        return int(held), "cuda_memory_allocated"
    if not tensors:
        return None, None
    return int(sum(t.numel() * t.element_size() for t in tensors)), "cache_tensors"


def _peak_rss_bytes() -> int:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024   # Linux reports KiB


def _pad_token_id(model) -> int:
    cfg = model.generation_config
    pad = cfg.pad_token_id if cfg.pad_token_id is not None else cfg.eos_token_id
    if isinstance(pad, list | tuple):
        pad = pad[0] if pad else None
    return int(pad) if pad is not None else 0


def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    from bench.core.device import synchronize

    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


class _Probe:
    """One model's prefill / first-token / decode timings on the seeded prompt."""

    def __init__(self, model, ids: torch.Tensor, new_tokens: int):
        import torch

        self.model, self.device, self.new_tokens = model, ids.device, new_tokens
        mask = torch.ones_like(ids)
        pad = _pad_token_id(model)
        kwargs = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
        self.prefill = lambda: model(input_ids=ids, attention_mask=mask, use_cache=True, **kwargs)
        self.generate = lambda n: (lambda: model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n,
                                                          min_new_tokens=n, do_sample=False, use_cache=True,
                                                          pad_token_id=pad))
        self.batch, self.ids = ids.shape[0], ids
        self.kv_measured: tuple[int | None, str | None] | None = None
        self.prefill_runs: list[float] = []
        self.ttft_runs: list[float] = []
        self.gen_runs: list[float] = []
        self.decode_runs: list[float] = []

    def warm(self) -> None:
        self.prefill()
        if self.kv_measured is None:  # untimed, after a first forward (its one-time workspaces are allocated)
            self.kv_measured = measured_kv_cache(self.model, self.ids)
        self.generate(self.new_tokens)()

    def repeat(self) -> None:
        self.prefill_runs.append(_timed(self.prefill, self.device))
        ttft = _timed(self.generate(1), self.device)
        total = _timed(self.generate(self.new_tokens), self.device)
        self.ttft_runs.append(ttft)
        self.gen_runs.append(total)
        self.decode_runs.append(self.batch * (self.new_tokens - 1) / max(total - ttft, 1e-9))


def measure_latency(model, *, batch_size: int = 1, prompt_tokens: int = 128, new_tokens: int = 64,
                    warmup: int = 1, repeats: int = 3, seed: int = 0,
                    identity: Mapping[str, Any] | None = None) -> LatencyResult:
    """Prefill, time to first token and KV-cache decode speed of `model` on its own device."""
    return measure_latencies([model], batch_size=batch_size, prompt_tokens=prompt_tokens, new_tokens=new_tokens,
                             warmup=warmup, repeats=repeats, seed=seed, identity=identity)[0]


def measure_latencies(models, *, batch_size: int = 1, prompt_tokens: int = 128, new_tokens: int = 64,
                      warmup: int = 1, repeats: int = 3, seed: int = 0,
                      identity: Mapping[str, Any] | None = None,
                      labels: Sequence[str] | None = None) -> list[LatencyResult]:
    """`measure_latency` of several models (a pruned one and its dense reference, say) with their repeats
    interleaved, so that a machine speeding up or slowing down during the measurement (frequency, caches,
    other jobs) moves all of them alike and their ratio stays fair. The same seeded prompt for all.
    `labels` name the models in the log lines (e.g. pruned, dense)."""
    if new_tokens < 2 or repeats < 1 or prompt_tokens < 1 or batch_size < 1:
        raise ValueError("need new_tokens >= 2, repeats >= 1, prompt_tokens >= 1, batch_size >= 1")
    import torch

    with torch.inference_mode():
        return _measure(models, batch_size, prompt_tokens, new_tokens, warmup, repeats, seed, identity, labels)


def _measure(models, batch_size, prompt_tokens, new_tokens, warmup, repeats, seed, identity,
             labels) -> list[LatencyResult]:
    import torch

    from bench.core.device import is_cuda

    device = next(models[0].parameters()).device
    vocab = models[0].get_input_embeddings().weight.shape[0]
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (batch_size, prompt_tokens), generator=gen).to(device)
    probes = [_Probe(m, ids, new_tokens) for m in models]
    if is_cuda(device):
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(warmup):
        for probe in probes:
            probe.warm()
    for _ in range(repeats):
        for probe in probes:
            probe.repeat()
    if is_cuda(device):
        peak, kind = torch.cuda.max_memory_allocated(device), "cuda_max_allocated"
    else:
        peak, kind = _peak_rss_bytes(), "process_peak_rss"
    labels = list(labels or [f"model {i + 1}" for i in range(len(probes))])
    return [_result(p, prompt_tokens, warmup, repeats, seed, peak, kind, identity, label, p.kv_measured or
                    measured_kv_cache(p.model, ids))   # no warm-up: one more prefill, after the peak
            for p, label in zip(probes, labels, strict=True)]


def _result(probe: _Probe, prompt_tokens, warmup, repeats, seed, peak, kind, identity,
            label: str = "model", kv_measured=(None, None)) -> LatencyResult:
    import torch

    from bench.evaluate.environment import environment

    model = probe.model
    param = next(model.parameters())
    params, nbytes = parameter_size(model)
    result = LatencyResult(
        batch_size=probe.batch, prompt_tokens=prompt_tokens, new_tokens=probe.new_tokens, warmup=warmup,
        repeats=repeats, prefill_ms=statistics.median(probe.prefill_runs) * 1e3,
        ttft_ms=statistics.median(probe.ttft_runs) * 1e3, decode_tokens_per_s=statistics.median(probe.decode_runs),
        generate_s=statistics.median(probe.gen_runs), prefill_ms_runs=[t * 1e3 for t in probe.prefill_runs],
        ttft_ms_runs=[t * 1e3 for t in probe.ttft_runs], decode_tokens_per_s_runs=probe.decode_runs,
        generate_s_runs=probe.gen_runs, peak_memory_bytes=int(peak), peak_memory_kind=kind, parameters=params,
        checkpoint_bytes=nbytes, weights_bytes=nbytes, device=str(param.device), dtype=str(param.dtype).removeprefix("torch."),
        torch_threads=torch.get_num_threads(), seed=seed, provenance=environment(model),
        identity=dict(identity or {}), kv_cache_bytes=kv_cache_bytes(model, prompt_tokens + probe.new_tokens,
                                                                      probe.batch),
        kv_cache_measured_bytes=kv_measured[0], kv_cache_measured_kind=kv_measured[1])
    log.info("latency of the %s model (batch %d, %d + %d tokens, median of %d): prefill %.1f ms, ttft %.1f ms, "
             "decode %.1f tok/s", label, probe.batch, prompt_tokens, probe.new_tokens, repeats, result.prefill_ms,
             result.ttft_ms, result.decode_tokens_per_s)
    return result
