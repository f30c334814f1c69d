"""Stability (bench.evaluate.stability): LLM-Streamline's agreement of a pruned model's per-sample answers
with the dense model's, from the accuracy evaluator's samples: weights from the spread of the dense model's
per-choice mean NLL, correctness by each task's headline metric, beside it plain agreement, Kish's effective
sample size and a bootstrap interval. The record part `stability` (None in the dense cell) and the metric
`stability` (not compared by regress: it follows from the per-sample answers, which are)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.core.record import Part, number
from bench.metrics import Column, EvalContext, Evaluator, Measure, Metric, Outcome, evaluator, metric


@dataclass
class StabilityPart(Part):
    optional = ("span",)   # newer records
    per_task: dict[str, float] = field(default_factory=dict)
    mean: float | None = None
    metric: str | None = None
    official: bool | None = None
    spread: str | None = None
    span: str | None = None          # what the NLL spread is taken over: question+answer | answer
    n: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    metrics: dict[str, str] = field(default_factory=dict)         # task -> metric that judged correctness
    agreement: dict[str, float] = field(default_factory=dict)     # task -> unweighted share agreeing
    agreement_mean: float | None = None
    ess: dict[str, float] = field(default_factory=dict)           # task -> Kish effective sample size
    ci: dict[str, list[float]] = field(default_factory=dict)      # task -> [low, high]
    mean_ci: list[float] = field(default_factory=list)
    ci_level: float | None = None


@evaluator
class StabilityEvaluator(Evaluator):
    name = "stability"
    part = StabilityPart
    order = 40

    def evaluate(self, ctx: EvalContext) -> Outcome:
        mine = ctx.results.get("accuracy")
        dense = (ctx.reference or {}).get("accuracy")
        if ctx.cell.dense or not ctx.spec.eval.stability or mine is None or dense is None or dense.value is None:
            return Outcome(None)
        from bench.evaluate.stability import stability_of

        with ctx.stage("stability"):
            return Outcome(StabilityPart.from_dict(stability_of(dense.value, mine.value).to_dict()))


def _read(record) -> dict[str, Measure]:
    mean = number(record.stability.mean) if record.stability is not None else None
    return {} if mean is None else {"stability": Measure(mean)}


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
