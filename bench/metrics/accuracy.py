"""Accuracy: lm-eval's multiple-choice tasks (bench.evaluate.multiple_choice), one stage per task; the record
part `accuracy` (`AccuracyResult`, declared where it is computed) and the metric `accuracy` ("accuracy/avg"
and "accuracy/<task>", with lm-eval's stderr). `bench regress` judges accuracy document by document from the
per-sample records (bench.results.regress); the metric's own rule (a change of more than `acc_points` points
either way) is for cells without them."""

from __future__ import annotations

from typing import Any

from bench.core.record import number
from bench.evaluate.multiple_choice import AccuracyResult, evaluate_accuracy, merge_results
from bench.metrics import AbsoluteChange, Column, Evaluator, Measure, Metric, Outcome, evaluator, metric


@evaluator
class AccuracyEvaluator(Evaluator):
    name = "accuracy"
    part = AccuracyResult
    order = 10

    def enabled(self, spec) -> bool:
        return bool(spec.eval.tasks)

    def evaluate(self, ctx) -> Outcome:
        """Task by task (a progress stage each), merged into one AccuracyResult: the record part, and beside
        the record its settings and provenance (accuracy.json) and per-sample records (samples.jsonl)."""
        ev = ctx.spec.eval
        parts = []
        for task in ev.tasks:
            with ctx.stage(f"accuracy {task}", f"accuracy_{task}_s"):
                parts.append(evaluate_accuracy(
                    ctx.model, ctx.tokenizer, [task], batch_size=ev.batch_size, limit=ev.limit,
                    num_fewshot=ev.num_fewshot, identity=ctx.cell.info(),
                    keep_lm_eval_samples=ev.log_lm_eval_samples, subset=ev.subset, subset_seed=ev.subset_seed,
                    engine=ev.engine, reuse=ctx.reuse, score_contexts=ctx.cell.dense and bool(ev.stability)))
            # lm-eval's scoring alone: the stage also holds the dense cell's context pass (stability's
            # spread), which pruned cells skip (what `bench run --dry-run` estimates them from)
            ctx.timings[f"scoring_{task}_s"] = parts[-1].wall_s
        result = merge_results(parts)  # every task's version kept in the provenance
        result.engine_stats = {task: part.engine_stats for task, part in zip(ev.tasks, parts, strict=True)}
        dense = (ctx.reference or {}).get("accuracy")
        if dense is not None and dense.value is not None:
            result.delta_vs_dense = result.average - dense.value.average
        artifacts: dict[str, Any] = {
            "accuracy.json": result.artifact(samples=False),
            "samples.jsonl": [{"task": t, **s} for t, rows in result.samples.items() for s in rows]}
        if ev.log_lm_eval_samples and result.lm_eval_samples is not None:
            artifacts["lm_eval_samples.json"] = result.artifact(raw=True)["lm_eval_samples"]
        return Outcome(result, artifacts, result)

    def reference(self, store, key, record) -> Outcome | None:
        """The dense AccuracyResult with its per-sample records, rebuilt from the dense cell's files."""
        raw = store.read_artifact(key, "accuracy.json")
        if raw is None:
            return None
        samples: dict[str, list] = {}
        for row in store.read_artifact(key, "samples.jsonl") or []:
            row = dict(row)
            samples.setdefault(row.pop("task"), []).append(row)
        return Outcome(record.part(self.name), value=AccuracyResult.from_artifact({**raw, "samples": samples}))


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
