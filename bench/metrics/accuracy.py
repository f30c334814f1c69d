"""Accuracy: lm-eval's multiple-choice tasks (bench.evaluate.accuracy), one stage per task; the record part
`accuracy` and the metric `accuracy` ("accuracy/avg" and "accuracy/<task>", with lm-eval's stderr).
`bench regress` judges accuracy document by document from the per-sample records (bench.results.regress); the
metric's own rule (a change of more than `acc_points` points either way) is for cells without them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bench.core.record import Part, number
from bench.metrics import (
    AbsoluteChange,
    Column,
    EvalContext,
    Evaluator,
    Measure,
    Metric,
    Outcome,
    evaluator,
    metric,
)


@dataclass
class TaskPart(Part):
    """One task's scores (bench.evaluate.accuracy.TaskScore as the record keeps it)."""

    acc: float | None = None
    acc_stderr: float | None = None
    acc_norm: float | None = None
    acc_norm_stderr: float | None = None
    metric: str | None = None  # the headline metric the average uses
    score: float | None = None
    n: int | None = None
    n_total: int | None = None
    split: str | None = None
    limit: int | float | None = None
    shots: int | None = None
    version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. lambada perplexity

    def headline(self) -> tuple[float | None, float | None]:
        """(headline score, its stderr); stderr is None where lm-eval gives none."""
        name = self.metric or "acc"
        fields = self.to_dict()
        return number(fields.get(name, self.score)), number(fields.get(f"{name}_stderr"))


@dataclass
class AccuracyPart(Part):
    optional = ("delta_vs_dense", "subset", "subset_seed", "engine")  # pruned cells only; older records

    tasks: dict[str, TaskPart] = field(default_factory=dict)
    average: float | None = None  # of each task's headline metric
    average_of: str | None = None
    delta_vs_dense: float | None = None
    limit: int | float | None = None
    num_fewshot: int | None = None
    batch_size: int | None = None
    data: str | None = None
    softmax_dtype: str | None = None
    wall_s: float | None = None
    task_versions: dict[str, Any] | None = None
    subset: str | None = None  # which `limit` documents: random (seeded) | first
    subset_seed: int | None = None
    engine: str | None = None  # prefix (bench.evaluate.engine) | lm-eval

    def average_stderr(self) -> float | None:
        """The mean's stderr, sqrt(sum se_i^2) / k (tasks independent); None unless every task has one."""
        errs = [t.headline()[1] for t in self.tasks.values()]
        if not errs or None in errs:
            return None
        return math.sqrt(sum(e * e for e in errs)) / len(errs)

    @classmethod
    def of(cls, acc) -> AccuracyPart:
        """The part for a bench.evaluate.accuracy.AccuracyResult."""
        tasks = {name: TaskPart(acc=s.acc, acc_stderr=s.acc_stderr, acc_norm=s.acc_norm,
                                acc_norm_stderr=s.acc_norm_stderr, metric=s.metric, score=s.score, n=s.n,
                                n_total=s.n_total, split=s.split, limit=acc.limit, shots=s.shots,
                                version=s.version, extra=s.extra)
                 for name, s in acc.tasks.items()}
        return cls(tasks=tasks, average=acc.average(), average_of="each task's headline metric (tasks.*.metric)",
                   limit=acc.limit, num_fewshot=acc.num_fewshot, batch_size=acc.batch_size, data=acc.data,
                   softmax_dtype=acc.softmax_dtype, wall_s=acc.wall_s,
                   task_versions=acc.provenance.get("task_versions"), subset=acc.subset,
                   subset_seed=acc.subset_seed, engine=acc.engine)


@evaluator
class AccuracyEvaluator(Evaluator):
    name = "accuracy"
    part = AccuracyPart
    order = 10

    def enabled(self, spec) -> bool:
        return bool(spec.eval.tasks)

    def evaluate(self, ctx: EvalContext) -> Outcome:
        """Task by task (a progress stage each), merged into one AccuracyResult."""
        from bench.evaluate.accuracy import evaluate_accuracy, merge_results

        ev = ctx.spec.eval
        parts = []
        for task in ev.tasks:
            with ctx.stage(f"accuracy {task}", f"accuracy_{task}_s"):
                parts.append(evaluate_accuracy(
                    ctx.model, ctx.tokenizer, [task], batch_size=ev.batch_size, limit=ev.limit,
                    num_fewshot=ev.num_fewshot, identity=ctx.cell.info(),
                    keep_lm_eval_samples=ev.log_lm_eval_samples, subset=ev.subset, subset_seed=ev.subset_seed,
                    engine=ev.engine, reuse=ctx.reuse, score_contexts=ctx.cell.dense and bool(ev.stability)))
        result = merge_results(parts)  # every task's version kept in the provenance
        result.engine_stats = {task: part.engine_stats for task, part in zip(ev.tasks, parts, strict=True)}
        summary = AccuracyPart.of(result)
        dense = (ctx.reference or {}).get("accuracy")
        if dense is not None and dense.value is not None:
            summary.delta_vs_dense = result.average() - dense.value.average()
        artifacts: dict[str, Any] = {
            "accuracy.json": result.to_dict(samples=False),
            "samples.jsonl": [{"task": t, **s} for t, rows in result.samples.items() for s in rows]}
        if ev.log_lm_eval_samples and result.lm_eval_samples is not None:
            artifacts["lm_eval_samples.json"] = result.to_dict(raw=True)["lm_eval_samples"]
        return Outcome(summary, artifacts, result)

    def reference(self, store, key, record) -> Outcome | None:
        """The dense AccuracyResult with its per-sample records, rebuilt from the dense cell's files."""
        raw = store.read_artifact(key, "accuracy.json")
        if raw is None:
            return None
        from bench.evaluate.accuracy import AccuracyResult

        samples: dict[str, list] = {}
        for row in store.read_artifact(key, "samples.jsonl") or []:
            row = dict(row)
            samples.setdefault(row.pop("task"), []).append(row)
        return Outcome(record.part(self.name), value=AccuracyResult.from_dict({**raw, "samples": samples}))


def _read(record) -> dict[str, Measure]:
    acc = record.part("accuracy")
    if acc is None:
        return {}
    out = {}
    if number(acc.average) is not None:
        out["accuracy/avg"] = Measure(number(acc.average), acc.average_stderr())
    for task, t in acc.tasks.items():
        value, stderr = t.headline()
        if value is not None:
            out[f"accuracy/{task}"] = Measure(value, stderr)
    return out


def _columns(group) -> list[Column]:
    """Avg with its paired-bootstrap interval, Δ vs dense with its interval and Holm-adjusted p, RP, RP above
    chance and each task's headline score, cells at or below chance marked; the statistics come from the
    report's `group.evidence` (bench.report.evidence), plain values where there is none."""
    if not group.task_metrics:
        return []
    ev = getattr(group, "evidence", None)

    def avg(g, r):
        iv = ev.avg.get(r.key) if ev is not None else None
        return (r.accuracy, None) if iv is None else (iv.estimate, (iv.low, iv.high))

    def below_avg(g, r):
        chance = ev.chance_avg if ev is not None else None
        return BELOW_CHANCE if chance is not None and r.accuracy is not None and r.accuracy <= chance else ""

    def delta(g, r):
        c = ev.vs_dense.get(r.key) if ev is not None else None
        return (None, None) if c is None else (c.diff.estimate, (c.diff.low, c.diff.high))

    def p(g, r):
        c = ev.vs_dense.get(r.key) if ev is not None else None
        return (None, None) if c is None else (c.p_holm, c.significant)

    def below(task):
        def mark(g, r):
            return BELOW_CHANCE if ev is not None and ev.at_or_below_chance(task, r.task_score(task)[0]) else ""
        return mark

    cols = [Column("Avg acc % [95 % CI] ↑", avg, style="interval", mark=below_avg),
            Column("Δ vs dense, points [95 % CI]", delta, style="signed", dense=False),
            Column("p vs dense (Holm)", p, style="p", dense=False),
            Column("RP % ↑", lambda g, r: (g.retained(r), None)),
            Column("RP above chance % ↑", lambda g, r: (ev.rp_above_chance(r) if ev is not None else None, None))]
    for task, name in group.task_metrics.items():
        cols.append(Column(f"{task} ({name}) ↑", lambda g, r, task=task: r.task_score(task), style="pct",
                           mark=below(task)))
    return cols


BELOW_CHANCE = "†"   # marks an accuracy at or below chance (the report's pages explain it)


def _progress(record) -> list[str]:
    acc = record.part("accuracy")
    return [] if acc is None or acc.average is None else [f"avg acc {acc.average:.3f}"]


metric(Metric(name="accuracy", title="Accuracy", unit="fraction", direction="higher", uncertainty="stderr",
              read=_read, regress=AbsoluteChange("acc_points", unit="points", scale=100.0), columns=_columns,
              progress=_progress, summary=lambda name: name == "accuracy/avg", scale=100.0, digits=1, order=10))
