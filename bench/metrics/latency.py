"""Latency (bench.evaluate.timing): prefill and decode at each batch size of the spec, a pruned model's
measured interleaved with the dense model's (repeat by repeat, same prompt) so the speed-ups carry none of the
machine's drift, each with a paired 95 % interval (t on the per-repeat log-ratios, bench.stats.speedup);
weights plus KV-cache bytes per model. The record part `latency` (the first batch size at the top level,
every one under `batches`); metrics `latency/prefill_ms` and `latency/decode_tokens_per_s` (shown, not
compared: absolute times belong to one machine) and `latency/decode_speedup` (the paired speed-up with its
interval, which `bench regress` compares by interval overlap)."""

from __future__ import annotations

import logging
from typing import Any

from bench.core.record import number
from bench.evaluate.environment import host_state
from bench.evaluate.timing import LatencyResult, measure_latencies
from bench.metrics import Column, Evaluator, IntervalOverlap, Measure, Metric, Outcome, evaluator, metric
from bench.stats.speedup import speedup_ci

log = logging.getLogger(__name__)


@evaluator
class LatencyEvaluator(Evaluator):
    name = "latency"
    part = LatencyResult
    order = 30

    def enabled(self, spec) -> bool:
        return spec.eval.latency is not None

    def evaluate(self, ctx) -> Outcome:
        lat = ctx.spec.eval.latency
        paired = not ctx.cell.dense and ctx.model is not ctx.dense_model
        models = [ctx.model, ctx.dense_model] if paired else [ctx.model]
        batches: dict[str, LatencyResult] = {}
        before = host_state()
        with ctx.stage("latency", "latency_s"):
            for batch in lat.all_batch_sizes:
                results = measure_latencies(models, batch_size=batch, prompt_tokens=lat.prompt_tokens,
                                            new_tokens=lat.new_tokens, warmup=lat.warmup, repeats=lat.repeats,
                                            seed=ctx.cell.seed or 0,
                                            labels=["pruned", "dense (paired)"] if paired else ["dense"])
                if paired:
                    _pair(*results)
                batches[str(batch)] = results[0]
        first = batches[str(lat.all_batch_sizes[0])]
        if len(batches) > 1:
            first.batches = {b: r.batch_fields() for b, r in batches.items()}
        after = host_state()
        cpu = str(first.device or "cpu").startswith("cpu")
        load = max(before["load_1m"] or 0.0, after["load_1m"] or 0.0)
        # our own measurement keeps about one core busy: more than the usable cores loaded means others ran too
        busy = cpu and before["load_1m"] is not None and load > before["cpus"]
        first.host = {"load_1m_before": before["load_1m"], "load_1m_after": after["load_1m"],
                      "cpus": before["cpus"], "cpu_model": before["cpu_model"], "busy": busy}
        if busy:
            log.warning("latency of %s measured at load %.1f on %d usable CPUs: marked as not comparable",
                        ctx.cell.label, load, before["cpus"])
        return Outcome(first)


def _pair(pruned: LatencyResult, dense: LatencyResult) -> None:
    """The dense model's timings (measured interleaved with the pruned one's) and the paired speed-ups, with
    their intervals, into the pruned model's result."""
    pruned.dense_paired = {
        "prefill_ms": dense.prefill_ms, "decode_tokens_per_s": dense.decode_tokens_per_s,
        "prefill_ms_runs": dense.prefill_ms_runs, "decode_tokens_per_s_runs": dense.decode_tokens_per_s_runs,
        "weights_bytes": dense.checkpoint_bytes, "kv_cache_bytes": dense.kv_cache_bytes}
    pruned.decode_speedup_ci = speedup_ci(pruned.decode_tokens_per_s_runs, dense.decode_tokens_per_s_runs).to_dict()
    pruned.prefill_speedup_ci = speedup_ci(dense.prefill_ms_runs, pruned.prefill_ms_runs).to_dict()
    # the one speed-up estimate every table shows: the paired median (bench.stats.speedup)
    pruned.decode_speedup_vs_dense = pruned.decode_speedup_ci["estimate"]
    pruned.prefill_speedup_vs_dense = pruned.prefill_speedup_ci["estimate"]


def speedup_measure(part: dict[str, Any] | None) -> Measure | None:
    """The decode speed-up over dense with its paired interval, from one batch size's latency fields
    (computed from the interleaved repeats where the record predates the stored interval)."""
    if not part:
        return None
    ci = None
    runs = part.get("decode_tokens_per_s_runs")
    dense = (part.get("dense_paired") or {}).get("decode_tokens_per_s_runs")
    if isinstance(runs, list) and isinstance(dense, list) and runs and len(runs) == len(dense):
        ci = speedup_ci(runs, dense).to_dict()   # from the repeats: every record under today's estimator
    ci = ci or part.get("decode_speedup_ci")
    if ci is not None:
        return Measure(ci["estimate"], low=ci.get("low"), high=ci.get("high"))
    value = number(part.get("decode_speedup_vs_dense"))
    return None if value is None else Measure(value)


def _reader(field_name: str):
    name = f"latency/{field_name}"
    return lambda record: Measure.named(name, record.latency and getattr(record.latency, field_name))


def _speedups(record) -> dict[str, Measure]:
    lat = record.latency
    if lat is None:
        return {}
    out = {}
    by_batch = lat.by_batch()
    for batch, part in sorted(by_batch.items()):
        m = speedup_measure(part)
        if m is not None:
            out["latency/decode_speedup" + (f"/b{batch}" if len(by_batch) > 1 else "")] = m
    return out


def _memory(part: dict[str, Any]) -> float | None:
    weights, kv = part.get("weights_bytes", part.get("checkpoint_bytes")), part.get("kv_cache_bytes")
    return (weights + kv) / 2 ** 20 if isinstance(weights, int) and weights and isinstance(kv, int) else None


def _speedup_columns(group) -> list[Column]:
    sizes = sorted({b for row in group.all_rows if row.record.latency is not None
                    for b in row.record.latency.by_batch()})
    if not sizes:
        return []

    def speedup(batch):
        def value(g, r):
            if r.dense:
                return 1.0, None
            m = speedup_measure(r.record.latency.by_batch().get(batch) if r.record.latency else None)
            return (None, None) if m is None else (m.value, None if m.low is None else (m.low, m.high))
        return value

    def memory(g, r):
        part = r.record.latency.by_batch().get(sizes[-1]) if r.record.latency else None
        return (_memory(part) if part else None), None

    headers = ([f"Decode × batch {b} [95 % CI]" for b in sizes] if len(sizes) > 1 else ["Decode × [95 % CI]"])
    def busy(g, r):
        return BUSY if r.record.latency is not None and r.record.latency.busy else ""

    return [*[Column(h, speedup(b), style="ratio", digits=2, suffix="×", mark=busy)
              for h, b in zip(headers, sizes)],
            Column(f"Weights + KV MiB (batch {sizes[-1]})", memory, digits=0)]


BUSY = " (busy)"  # a speed-up measured while the host ran other work (load > usable CPUs): not comparable


def _not_in_summary(name: str) -> bool:
    return False  # the closing table's "decode ×" column is the latency summary


metric(Metric(name="latency/prefill_ms", title="Prefill", unit="ms", direction="lower", uncertainty="runs",
              read=_reader("prefill_ms"), regress=None, group="latency", columns=lambda group: [],
              progress=lambda r: [], summary=_not_in_summary, order=40))
metric(Metric(name="latency/decode_tokens_per_s", title="Decode", unit="tokens/s", direction="higher",
              uncertainty="runs", read=_reader("decode_tokens_per_s"), regress=None, group="latency",
              columns=lambda group: [], progress=lambda r: [], summary=_not_in_summary, order=41))
metric(Metric(name="latency/decode_speedup", title="Decode speed-up over dense", unit="×", direction="higher",
              uncertainty="interval", read=_speedups, regress=IntervalOverlap("latency_pct"), group="latency",
              columns=_speedup_columns, progress=lambda r: [], summary=_not_in_summary, order=42))
