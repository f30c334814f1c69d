"""Accuracy through EleutherAI lm-eval, on an already-loaded (dense or pruned) model object.

`evaluate_accuracy` wraps the model in lm-eval's own `HFLM` with our batch size (a model object passed
to HFLM otherwise runs at batch size 1), builds lm-eval's built-in tasks with the data swapped for local
copies (`bench.data.tasks`), and runs `lm_eval.simple_evaluate`. Besides the scores it keeps a compact
per-sample record for every document (per-choice log-likelihoods, continuation token counts, gold index,
per-sample acc/acc_norm): stability (`bench.evaluate.answer_agreement`) needs exactly these, from the dense model
once and from each pruned model. lm-eval's results name the model it was given, never ours, so the
caller's identity fields are stamped on the result instead.

The result, `AccuracyResult`, is the record part `accuracy` itself (`bench.metrics.accuracy` registers it);
the per-sample records, lm-eval's log and the provenance ride along in fields the record never stores, and
`artifact()` writes them as accuracy.json. lm-eval's internals the harness relies on are in
`bench.evaluate.lm_eval_glue`.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.core.errors import ConfigError
from bench.core.record import Part, number
from bench.data import tasks as task_registry
from bench.evaluate.lm_eval_glue import (
    add_context_scores,
    counting_hflm_class,
    document_subset,
    sample_record,
    task_manager,
)

log = logging.getLogger(__name__)


@dataclass
class TaskScore(Part):
    """One task's scores as lm-eval computed them (stderr is None where lm-eval gives none). The record keeps
    every field but `task` (the name it is stored under)."""

    transient = ("task",)

    acc: float | None = None
    acc_stderr: float | None = None
    acc_norm: float | None = None
    acc_norm_stderr: float | None = None
    metric: str | None = None    # the headline metric an average uses
    score: float | None = None   # the headline metric's value
    n: int | None = None         # documents scored (after limit)
    n_total: int | None = None   # documents in the split
    split: str | None = None
    limit: int | float | None = None
    shots: int | None = None
    version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. lambada perplexity
    task: str | None = None

    @classmethod
    def scored(cls, **fields) -> TaskScore:
        """The task's scores, `score` taken from its headline metric."""
        out = cls(**fields)
        out.score = getattr(out, out.metric, None) if out.metric in _SCORES else None
        return out

    def headline(self) -> tuple[float | None, float | None]:
        """(headline score, its stderr); stderr is None where lm-eval gives none."""
        name = self.metric or "acc"
        fields = self.to_dict()
        return number(fields.get(name, self.score)), number(fields.get(f"{name}_stderr"))

    def artifact(self) -> dict[str, Any]:
        """The task as accuracy.json has always kept it (with `task`, without `score` and `limit`)."""
        return {name: getattr(self, name) for name in _ARTIFACT_TASK}


_SCORES = ("acc", "acc_norm")
_ARTIFACT_TASK = ("task", "split", "n", "n_total", "metric", "shots", "version", "acc", "acc_stderr", "acc_norm",
                  "acc_norm_stderr", "extra")
AVERAGE_OF = "each task's headline metric (tasks.*.metric)"


@dataclass
class AccuracyResult(Part):
    """Scores, settings and provenance of one accuracy evaluation: the record part `accuracy`, and in memory
    (never in the record) the per-sample records, lm-eval's own sample log, the provenance and the engine's
    counters, which `artifact()` writes as accuracy.json."""

    optional = ("delta_vs_dense", "subset", "subset_seed", "engine")  # pruned cells only; older records
    transient = ("samples", "lm_eval_samples", "max_length", "bootstrap_iters", "provenance", "identity",
                 "engine_stats")

    tasks: dict[str, TaskScore] = field(default_factory=dict)
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
    subset: str | None = None                     # how `limit` picks documents: first | random (seeded)
    subset_seed: int | None = None                # the random subset's seed
    engine: str | None = None                     # lm-eval (HFLM) | prefix (bench.evaluate.engine)
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # task -> a record per document
    lm_eval_samples: dict[str, list[dict[str, Any]]] | None = field(default=None, repr=False)
    max_length: int | None = None
    bootstrap_iters: int | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)
    engine_stats: dict[str, Any] | None = None

    def settings(self) -> dict[str, Any]:
        """What must match for two results to be compared sample by sample (dense vs pruned)."""
        return {"batch_size": self.batch_size, "limit": self.limit, "num_fewshot": self.num_fewshot,
                "data": self.data, "softmax_dtype": self.softmax_dtype, "max_length": self.max_length,
                "subset": self.subset, "subset_seed": self.subset_seed}

    def mean_score(self, tasks: Sequence[str] | None = None) -> float:
        """Mean of each task's headline metric (the metric is stated per task in `tasks[...].metric`)."""
        names = list(tasks) if tasks is not None else list(self.tasks)
        scores = [self.tasks[n].score for n in names]
        return float(sum(scores) / len(scores)) if scores and None not in scores else math.nan

    def average_stderr(self) -> float | None:
        """The mean's stderr, sqrt(sum se_i^2) / k (tasks independent); None unless every task has one."""
        errs = [t.headline()[1] for t in self.tasks.values()]
        if not errs or None in errs:
            return None
        return math.sqrt(sum(e * e for e in errs)) / len(errs)

    def artifact(self, samples: bool = True, raw: bool = False) -> dict[str, Any]:
        """The result as accuracy.json (`samples=False`) and the dense cache have always kept it: settings,
        provenance and each task's scores; the per-sample records with `samples`, lm-eval's log with `raw`."""
        out = {name: copy.deepcopy(getattr(self, name)) for name in _ARTIFACT}
        out["tasks"] = {name: task.artifact() for name, task in self.tasks.items()}
        if samples:
            out["samples"] = copy.deepcopy(self.samples)
        if raw and self.lm_eval_samples is not None:
            import json

            # lm-eval's own log: docs and arguments as it wrote them (round-tripped to plain JSON types)
            out["lm_eval_samples"] = json.loads(json.dumps(self.lm_eval_samples, default=str))
        return out

    @classmethod
    def from_artifact(cls, d: Mapping[str, Any]) -> AccuracyResult:
        """The result from what `artifact()` wrote (records before `subset` / `engine`: first, lm-eval)."""
        d = {"subset": "first", "engine": "lm-eval", "samples": {}, **d}
        tasks = {name: TaskScore.scored(**t, limit=d.get("limit")) for name, t in d.pop("tasks").items()}
        return finished(cls(tasks=tasks, **d))


_ARTIFACT = ("batch_size", "limit", "num_fewshot", "data", "softmax_dtype", "max_length", "bootstrap_iters",
             "wall_s", "provenance", "identity", "subset", "subset_seed", "engine", "engine_stats")


def finished(result: AccuracyResult) -> AccuracyResult:
    """`result` with the fields that follow from its tasks and provenance set: the average, the versions."""
    result.average, result.average_of = result.mean_score(), AVERAGE_OF
    result.task_versions = result.provenance.get("task_versions")
    return result


def cached_accuracy(path, compute: Callable[[], AccuracyResult], *, tasks: Sequence[str] = (),
                    settings: Mapping[str, Any] | None = None) -> AccuracyResult:
    """The dense model's accuracy, computed once: load `path` (JSON) if it holds `tasks` under the same
    `settings`, else run `compute()` and write it atomically. The runner owns where `path` lives.
    """
    from pathlib import Path

    from bench.core.atomic import write_json

    path = Path(path)
    if path.exists():
        import json

        cached = AccuracyResult.from_artifact(json.loads(path.read_text()))
        same = settings is None or all(cached.settings().get(k) == v for k, v in settings.items())
        if same and set(tasks) <= set(cached.tasks):
            return cached
        log.info("%s was computed for other tasks or settings; recomputing", path)
    result = compute()
    write_json(path, result.artifact())
    return result


ENGINES = ("prefix", "lm-eval")
SUBSETS = ("random", "first")


def make_lm(model, tokenizer, *, batch_size: int, max_length: int | None = None,
            softmax_dtype: str | None = "float32", engine: str = "lm-eval", reuse=None):
    """lm-eval's HFLM around a model object, with our batch size (public so baselines can build the same);
    with `engine="prefix"`, HFLM with the shared-context / dense-prefix scoring of bench.evaluate.engine."""
    kwargs = dict(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length,
                  softmax_dtype=softmax_dtype)
    if engine == "prefix":
        from bench.evaluate.engine import prefix_lm_class

        return prefix_lm_class()(reuse=reuse, **kwargs)
    return counting_hflm_class()(**kwargs)


def _num(value) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _task_split(task) -> str:
    cfg = task.config
    return cfg.test_split or cfg.validation_split or "?"


# ------------------------------------------------------------------------------------------ the API

def merge_results(parts: Sequence[AccuracyResult]) -> AccuracyResult:
    """One AccuracyResult from evaluations of disjoint task lists with the same settings (task by task runs):
    scores, samples and wall time added up, and every part's `task_versions` kept (the provenance of each
    task, not only of the first part's)."""
    if not parts:
        raise ValueError("nothing to merge")
    merged = copy.deepcopy(parts[0])
    versions = dict(merged.provenance.get("task_versions") or {})
    for part in parts[1:]:
        if part.settings() != merged.settings():
            raise ValueError(f"cannot merge accuracy results with different settings: {part.settings()} vs "
                             f"{merged.settings()}")
        merged.tasks.update(part.tasks)
        merged.samples.update(part.samples)
        merged.wall_s += part.wall_s
        versions.update(part.provenance.get("task_versions") or {})
        if part.lm_eval_samples is not None and merged.lm_eval_samples is not None:
            merged.lm_eval_samples.update(part.lm_eval_samples)
    merged.provenance["task_versions"] = versions
    return finished(merged)


def evaluate_accuracy(
    model,
    tokenizer,
    tasks: Sequence[str] | str,
    *,
    batch_size: int,
    limit: int | float | None = None,
    num_fewshot: int = 0,
    data: task_registry.DataMode = "local",
    max_length: int | None = None,
    softmax_dtype: str | None = "float32",
    bootstrap_iters: int = 1000,
    identity: Mapping[str, Any] | None = None,
    keep_lm_eval_samples: bool = True,
    subset: str = "first",
    subset_seed: int = 0,
    engine: str = "lm-eval",
    reuse=None,
    score_contexts: bool = False,
) -> AccuracyResult:
    """Score `model` on lm-eval tasks (0-shot by default) and keep per-sample records for stability.

    `limit` takes N documents of each task (MMLU: of each subject): the first N as lm-eval does
    (`subset="first"`), or a seeded random subset (`subset="random"`, `document_subset`, passed to lm-eval
    as `samples=`). `engine="prefix"` scores with bench.evaluate.engine (same numbers within its stated
    tolerance; `reuse` shares the dense model's stored layer states), `"lm-eval"` with HFLM itself.
    `softmax_dtype` is HFLM's (None: the model's dtype, lm-eval's default; float32 by default here so bf16
    models keep precise log-likelihoods). `bootstrap_iters` only affects non-mean metrics (LAMBADA's
    perplexity stderr); acc/acc_norm stderr are closed-form. `identity` (model, method, budget, seed, ...)
    is stamped on the result unchanged. `score_contexts` also scores each request's context on its own
    (from the BOS / end-of-text token, as lm-eval scores an empty context) and stores, per sample and choice,
    `context_loglik` and `context_n_tokens`: what stability's question-plus-answer spread needs (the dense
    cell only; one more pass over the contexts: up to as much again as the accuracy pass where contexts are
    long and answers short, 1617 of 3379 s on 1000 BoolQ documents for SmolLM2-135M).
    """
    infos = task_registry.resolve(tasks)
    if data not in ("local", "hub"):
        raise ConfigError(f"unknown data mode {data!r}", "use local (registry copies) or hub")
    if engine not in ENGINES or subset not in SUBSETS:
        raise ConfigError(f"unknown engine {engine!r} or subset {subset!r}",
                          f"use engine {' or '.join(ENGINES)}, subset {' or '.join(SUBSETS)}")
    if num_fewshot and data == "local":
        log.warning("%d-shot: no train split is shipped, so few-shot examples come from the scored split "
                    "itself (the document being scored excluded; MMLU uses its dev split)", num_fewshot)
    from bench.evaluate.environment import environment, quiet_git_probe

    start = time.perf_counter()
    with task_registry.offline(data):   # before lm_eval/datasets are imported; restored afterwards
        import lm_eval

        lm = make_lm(model, tokenizer, batch_size=batch_size, max_length=max_length, softmax_dtype=softmax_dtype,
                     engine=engine, reuse=reuse)
        tm = task_manager(task_registry.external_dirs())
        loaded = tm.load(task_registry.lm_eval_spec(infos, data))
        suite = loaded["groups"][task_registry.SUITE_GROUP]
        chosen = None
        if limit is not None and subset == "random":
            chosen = document_subset(loaded["tasks"], limit, subset_seed)
        with quiet_git_probe():
            res = lm_eval.simple_evaluate(model=lm, tasks=[suite], task_manager=tm, num_fewshot=num_fewshot,
                                          batch_size=batch_size, limit=None if chosen else limit, samples=chosen,
                                          log_samples=True, bootstrap_iters=bootstrap_iters)
    wall = time.perf_counter() - start

    lm_tasks = loaded["tasks"]
    scores: dict[str, TaskScore] = {}
    samples: dict[str, list[dict[str, Any]]] = {}
    for info in infos:
        if info.name == "mmlu":
            members = [n for n in lm_tasks if n.startswith("mmlu_")]
            row = res["results"][task_registry.mmlu_result_key()]
            version = str(res["versions"].get(task_registry.mmlu_result_key(), ""))
        else:
            members = [info.name]
            row = res["results"][info.name]
            version = str(res["versions"].get(info.name, ""))
        n = sum(res["n-samples"][m]["effective"] for m in members)
        n_total = sum(res["n-samples"][m]["original"] for m in members)
        extra = {k.split(",")[0]: _num(v) for k, v in row.items()
                 if "," in k and k.split(",")[0] not in ("acc", "acc_stderr", "acc_norm", "acc_norm_stderr")}
        scores[info.name] = TaskScore.scored(
            task=info.name, limit=limit, split=_task_split(lm_tasks[members[0]]), n=n, n_total=n_total, metric=info.metric,
            shots=int(res["n-shot"].get(members[0], num_fewshot)), version=version,
            acc=_num(row.get("acc,none")), acc_stderr=_num(row.get("acc_stderr,none")),
            acc_norm=_num(row.get("acc_norm,none")), acc_norm_stderr=_num(row.get("acc_norm_stderr,none")),
            extra=extra)
        samples[info.name] = [
            sample_record(lm, lm_tasks[m], s, m if info.name == "mmlu" else None)
            for m in members for s in res["samples"][m]]
        if score_contexts:
            add_context_scores(lm, [s for m in members for s in res["samples"][m]], samples[info.name])

    provenance = environment(model)
    provenance.update(lm_eval_version=res.get("lm_eval_version"), task_versions=dict(res["versions"]),
                      lm_eval_max_length=res.get("max_length"), date=res.get("date"))
    result = finished(AccuracyResult(
        tasks=scores, samples=samples, batch_size=batch_size, limit=limit, num_fewshot=num_fewshot, data=data,
        softmax_dtype=softmax_dtype, max_length=max_length, bootstrap_iters=bootstrap_iters, wall_s=wall,
        provenance=provenance, identity=dict(identity or {}),
        lm_eval_samples=dict(res["samples"]) if keep_lm_eval_samples else None,
        subset=subset, subset_seed=subset_seed if subset == "random" else None, engine=engine,
        engine_stats=lm.stats.to_dict() if hasattr(lm, "stats") else None))
    log.info("accuracy on %s in %.1f s: %s", ", ".join(scores), wall,
             ", ".join(f"{k} {v.metric} {v.score:.4f}" for k, v in scores.items() if v.score is not None))
    return result
