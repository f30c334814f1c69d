"""Latency (bench.evaluate.latency): prefill and decode, a pruned model's measured interleaved with the
dense model's (repeat by repeat, same prompt) so the speed-ups carry none of the machine's drift. The record
part `latency`; metrics `latency/prefill_ms` (lower), `latency/decode_tokens_per_s` (higher) and the
leaderboard's decode speed-up over the dense row."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.metrics import (
    Column,
    EvalContext,
    Evaluator,
    Measure,
    Metric,
    Outcome,
    RelativeChange,
    evaluator,
    metric,
)
from bench.record import Part, number


@dataclass
class LatencyPart(Part):
    optional = ("dense_paired", "decode_speedup_vs_dense", "prefill_speedup_vs_dense")  # pruned cells only

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
    peak_memory_kind: str | None = None
    parameters: int | None = None
    checkpoint_bytes: int | None = None
    device: str | None = None
    dtype: str | None = None
    torch_threads: int | None = None
    seed: int | None = None
    dense_paired: dict[str, Any] | None = None
    decode_speedup_vs_dense: float | None = None
    prefill_speedup_vs_dense: float | None = None


@evaluator
class LatencyEvaluator(Evaluator):
    name = "latency"
    part = LatencyPart
    order = 30

    def enabled(self, spec) -> bool:
        return spec.eval.latency is not None

    def evaluate(self, ctx: EvalContext) -> Outcome:
        from bench.evaluate.latency import measure_latencies

        lat = ctx.spec.eval.latency
        paired = not ctx.cell.dense and ctx.model is not ctx.dense_model
        models = [ctx.model, ctx.dense_model] if paired else [ctx.model]
        with ctx.stage("latency", "latency_s"):
            results = measure_latencies(models, batch_size=lat.batch_size, prompt_tokens=lat.prompt_tokens,
                                        new_tokens=lat.new_tokens, warmup=lat.warmup, repeats=lat.repeats,
                                        seed=ctx.cell.seed or 0)
        out = results[0].to_dict()
        out.pop("provenance", None)
        out.pop("identity", None)
        part = LatencyPart.from_dict(out)
        if paired:
            dense = results[1]
            part.dense_paired = {"prefill_ms": dense.prefill_ms, "decode_tokens_per_s": dense.decode_tokens_per_s,
                                 "prefill_ms_runs": dense.prefill_ms_runs,
                                 "decode_tokens_per_s_runs": dense.decode_tokens_per_s_runs}
            part.decode_speedup_vs_dense = part.decode_tokens_per_s / dense.decode_tokens_per_s
            part.prefill_speedup_vs_dense = dense.prefill_ms / part.prefill_ms
        return Outcome(part)


def _reader(field_name: str):
    def read(record) -> dict[str, Measure]:
        lat = record.latency
        value = number(getattr(lat, field_name)) if lat is not None else None
        return {} if value is None else {f"latency/{field_name}": Measure(value)}

    return read


def _no_progress(record) -> list[str]:
    return []


metric(Metric(name="latency/prefill_ms", title="Prefill", unit="ms", direction="lower", uncertainty="runs",
              read=_reader("prefill_ms"), regress=RelativeChange(tolerance="latency_pct", word="slower"),
              group="latency", columns=lambda group: [], progress=_no_progress, order=40))
metric(Metric(name="latency/decode_tokens_per_s", title="Decode", unit="tokens/s", direction="higher",
              uncertainty="runs", read=_reader("decode_tokens_per_s"),
              regress=RelativeChange(tolerance="latency_pct", word="slower"), group="latency",
              columns=lambda group: [Column("Decode ×", lambda g, r: (g.speedup(r), None), digits=2, suffix="×")],
              progress=_no_progress, order=41))
