"""Stability (bench.evaluate.answer_agreement): LLM-Streamline's agreement of a pruned model's per-sample
answers with the dense model's, from the accuracy evaluator's samples: weights from the spread of the dense
model's per-choice mean NLL, correctness by each task's headline metric, beside it plain agreement, Kish's
effective sample size and a bootstrap interval. The record part `stability` (`StabilityResult`; None in the
dense cell) and the metric `stability` (not compared by regress: it follows from the per-sample answers, which
are)."""

from __future__ import annotations

from bench.core.record import number
from bench.evaluate.answer_agreement import StabilityResult, stability_of
from bench.metrics import Column, Evaluator, Measure, Metric, Outcome, evaluator, metric


@evaluator
class StabilityEvaluator(Evaluator):
    name = "stability"
    part = StabilityResult
    order = 40

    def evaluate(self, ctx) -> Outcome:
        mine = ctx.results.get("accuracy")
        dense = (ctx.reference or {}).get("accuracy")
        if ctx.cell.dense or not ctx.spec.eval.stability or mine is None or dense is None or dense.value is None:
            return Outcome(None)
        with ctx.stage("stability"):
            return Outcome(stability_of(dense.value, mine.value))


def _read(record) -> dict[str, Measure]:
    return Measure.named("stability", record.stability and record.stability.mean)


def _progress(record) -> list[str]:
    mean = record.stability.mean if record.stability is not None else None
    return [] if mean is None else [f"stability {mean:.3f}"]


def _columns(group) -> list[Column]:
    if not group.task_metrics:
        return []

    def stab(g, r):
        part = r.record.stability
        if part is None or part.mean is None:
            return None, None
        return part.mean, (tuple(part.mean_ci) if len(part.mean_ci or []) == 2 else None)

    def agree(g, r):
        part = r.record.stability
        return (None if part is None else number(part.agreement_mean)), None

    return [Column("Stability % [95 % CI]", stab, style="interval", dense=False),
            Column("Agreement % ↑", agree, style="pct", dense=False)]


metric(Metric(name="stability", title="Stability", unit="fraction", direction="higher", uncertainty="none",
              read=_read, regress=None, columns=_columns, progress=_progress, scale=100.0, digits=1, order=20))
