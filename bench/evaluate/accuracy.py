"""Accuracy through EleutherAI lm-eval, on an already-loaded (dense or pruned) model object.

`evaluate_accuracy` wraps the model in lm-eval's own `HFLM` with our batch size (a model object passed
to HFLM otherwise runs at batch size 1), builds lm-eval's built-in tasks with the data swapped for local
copies (`bench.data.tasks`), and runs `lm_eval.simple_evaluate`. Besides the scores it keeps a compact
per-sample record for every document (per-choice log-likelihoods, continuation token counts, gold index,
per-sample acc/acc_norm): stability (`bench.evaluate.stability`) needs exactly these, from the dense model
once and from each pruned model. lm-eval's results name the model it was given, never ours, so the
caller's identity fields are stamped on the result instead.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.core.errors import ConfigError
from bench.data import tasks as task_registry

log = logging.getLogger(__name__)


@dataclass
class TaskScore:
    """One task's scores as lm-eval computed them (stderr is None where lm-eval gives none)."""

    task: str
    split: str
    n: int                       # documents scored (after limit)
    n_total: int                 # documents in the split
    metric: str                  # the headline metric an average uses
    shots: int
    version: str
    acc: float | None = None
    acc_stderr: float | None = None
    acc_norm: float | None = None
    acc_norm_stderr: float | None = None
    extra: dict[str, float | None] = field(default_factory=dict)  # e.g. lambada perplexity

    @property
    def score(self) -> float | None:
        return getattr(self, self.metric, None)


@dataclass
class AccuracyResult:
    """Scores, per-sample records and provenance of one accuracy evaluation; JSON-able via to_dict()."""

    tasks: dict[str, TaskScore]
    samples: dict[str, list[dict[str, Any]]]      # task -> one record per document, in lm-eval's order
    batch_size: int
    limit: int | float | None
    num_fewshot: int
    data: str
    softmax_dtype: str | None
    max_length: int | None
    bootstrap_iters: int
    wall_s: float
    provenance: dict[str, Any]
    identity: dict[str, Any] = field(default_factory=dict)
    lm_eval_samples: dict[str, list[dict[str, Any]]] | None = field(default=None, repr=False)
    subset: str = "first"                         # how `limit` picks documents: first | random
    subset_seed: int | None = None                # the random subset's seed
    engine: str = "lm-eval"                       # lm-eval (HFLM) | prefix (bench.evaluate.engine)
    engine_stats: dict[str, Any] | None = None

    def settings(self) -> dict[str, Any]:
        """What must match for two results to be compared sample by sample (dense vs pruned)."""
        return {"batch_size": self.batch_size, "limit": self.limit, "num_fewshot": self.num_fewshot,
                "data": self.data, "softmax_dtype": self.softmax_dtype, "max_length": self.max_length,
                "subset": self.subset, "subset_seed": self.subset_seed}

    def average(self, tasks: Sequence[str] | None = None) -> float:
        """Mean of each task's headline metric (the metric is stated per task in `tasks[...].metric`)."""
        names = list(tasks) if tasks is not None else list(self.tasks)
        scores = [self.tasks[n].score for n in names]
        return float(sum(scores) / len(scores)) if scores and None not in scores else math.nan

    def to_dict(self, samples: bool = True, raw: bool = False) -> dict[str, Any]:
        out = asdict(self)
        out.pop("lm_eval_samples")
        if not samples:
            out.pop("samples")
        if raw and self.lm_eval_samples is not None:
            import json

            # lm-eval's own log: docs and arguments as it wrote them (round-tripped to plain JSON types)
            out["lm_eval_samples"] = json.loads(json.dumps(self.lm_eval_samples, default=str))
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AccuracyResult:
        d = dict(d)
        d["tasks"] = {k: TaskScore(**v) for k, v in d["tasks"].items()}
        d.setdefault("samples", {})
        return cls(**d)


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

        cached = AccuracyResult.from_dict(json.loads(path.read_text()))
        same = settings is None or all(cached.settings().get(k) == v for k, v in settings.items())
        if same and set(tasks) <= set(cached.tasks):
            return cached
        log.info("%s was computed for other tasks or settings; recomputing", path)
    result = compute()
    write_json(path, result.to_dict())
    return result


# ------------------------------------------------------------------------------------------ lm-eval glue

class _DropMessages(logging.Filter):
    """Drops lm-eval log lines that are our normal path, not news: a warning per task using
    `custom_dataset` (57 for MMLU), and boolq/copa both declaring the same SuperGLUE tag."""

    def __init__(self, *fragments: str):
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(f in message for f in self.fragments)


@functools.cache
def task_manager(extra: tuple[str, ...] = ()):
    """lm-eval's TaskManager over the suite's built-in YAML folders only (and the include-path task folders
    `extra`), built once per process and set of folders.

    Indexing all ~15k built-in YAMLs takes 6 s on a quiet 2-core machine (30 s+ under load); the suite's
    folders take 0.2 s. The YAMLs, prompts and metrics are lm-eval's own either way.
    """
    from pathlib import Path

    import lm_eval.tasks
    from lm_eval.tasks import TaskManager

    logging.getLogger("lm_eval.api.task").addFilter(_DropMessages("Custom kwargs can be passed"))
    logging.getLogger("lm_eval.tasks._index").addFilter(_DropMessages("overrides existing task"))
    root = Path(lm_eval.tasks.__file__).parent
    return TaskManager(include_path=[str(root / d) for d in task_registry.lm_eval_task_dirs()] + list(extra),
                       include_defaults=False)


@functools.cache
def _counting_hflm_class():
    """HFLM that remembers each request's continuation token count as lm-eval itself tokenized it."""
    from lm_eval.models.huggingface import HFLM

    class CountingHFLM(HFLM):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.continuation_tokens: dict[tuple[str, str], int] = {}

        def _encode_pair(self, context, continuation):
            context_enc, continuation_enc = super()._encode_pair(context, continuation)
            self.continuation_tokens[(context, continuation)] = len(continuation_enc)
            return context_enc, continuation_enc

    return CountingHFLM


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
    return _counting_hflm_class()(**kwargs)


def document_subset(tasks: Mapping[str, Any], limit: int | float, seed: int) -> dict[str, list[int]]:
    """A seeded random subset of each task's documents (lm-eval's `samples=` argument), sorted.

    `limit` is a count, or a share of each task when below 1 (as lm-eval reads it). Each task draws with
    its own generator seeded by (seed, task name), so adding a task changes no other task's subset."""
    import random

    out = {}
    for name, task in tasks.items():
        n = len(task.eval_docs)
        k = min(n, int(math.ceil(limit * n)) if isinstance(limit, float) and limit < 1 else int(limit))
        out[name] = sorted(random.Random(f"{seed}:{name}").sample(range(n), k))
    return out


def _continuation_tokens(lm, context: str, continuation: str) -> int:
    n = lm.continuation_tokens.get((context, continuation))
    if n is not None:
        return n
    if context == "":  # lm-eval's empty-context path (BOS/EOS as context) bypasses _encode_pair
        enc = lm.tok_encode(continuation, add_special_tokens=False)
        return len(enc) if lm.prefix_token_id != enc[0] else len(enc) - 1
    return len(lm._encode_pair(context, continuation)[1])


def _gold_index(task, sample: Mapping[str, Any]) -> int | None:
    """The gold choice index exactly as lm-eval's multiple-choice process_results derives it.

    lm-eval logs `target` = doc_to_target(doc), and each request's continuation is the target delimiter
    plus a choice, so no template is rendered again (except for multiple-input tasks such as
    WinoGrande, whose gold index is doc_to_text(doc)).
    """
    gold = task.doc_to_text(sample["doc"]) if task.multiple_input else sample["target"]
    if isinstance(gold, str):
        delimiter = task.config.target_delimiter
        choices = [cont.removeprefix(delimiter) for _, cont in sample["arguments"]]
        if gold not in choices and not task.multiple_input:
            choices = task.doc_to_choice(sample["doc"])
        gold = choices.index(gold) if gold in choices else None
    if isinstance(gold, list):  # multiple targets: not a single gold index
        return None
    return int(gold) if gold is not None else None


def _sample_record(lm, task, sample: Mapping[str, Any], subtask: str | None) -> dict[str, Any]:
    lls = [float(r[0]) for r in sample["filtered_resps"]]
    record: dict[str, Any] = {"doc_id": int(sample["doc_id"])}
    if subtask is not None:
        record["subtask"] = subtask
    record["loglik"] = lls
    record["n_tokens"] = [_continuation_tokens(lm, *args) for args in sample["arguments"]]
    record["is_greedy"] = [bool(r[1]) for r in sample["filtered_resps"]]
    if task.OUTPUT_TYPE == "multiple_choice":
        record["gold"] = _gold_index(task, sample)
    for metric in ("acc", "acc_norm"):
        if metric in sample:
            record[metric] = float(sample[metric])
    return record


def _add_context_scores(lm, raw_samples: Sequence[Mapping[str, Any]], records: list[dict[str, Any]]) -> None:
    """Each choice's context scored on its own, log P(context | BOS), into `context_loglik` /
    `context_n_tokens` (per choice: WinoGrande's contexts differ by choice). Unique contexts run once."""
    from lm_eval.api.instance import Instance

    contexts = sorted({args[0] for s in raw_samples for args in s["arguments"]})
    scored = [c for c in contexts if c != ""]
    requests = [Instance(request_type="loglikelihood", doc={}, arguments=("", c), idx=0) for c in scored]
    results = dict(zip(scored, lm.loglikelihood(requests, disable_tqdm=True) if requests else [], strict=True))
    counts = {c: _continuation_tokens(lm, "", c) for c in scored}
    for sample, record in zip(raw_samples, records, strict=True):
        ctxs = [args[0] for args in sample["arguments"]]
        record["context_loglik"] = [float(results[c][0]) if c else 0.0 for c in ctxs]
        record["context_n_tokens"] = [counts[c] if c else 0 for c in ctxs]


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
    return merged


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
    cell only; one more pass over the contexts, about a third more scoring).
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
        scores[info.name] = TaskScore(
            task=info.name, split=_task_split(lm_tasks[members[0]]), n=n, n_total=n_total, metric=info.metric,
            shots=int(res["n-shot"].get(members[0], num_fewshot)), version=version,
            acc=_num(row.get("acc,none")), acc_stderr=_num(row.get("acc_stderr,none")),
            acc_norm=_num(row.get("acc_norm,none")), acc_norm_stderr=_num(row.get("acc_norm_stderr,none")),
            extra=extra)
        samples[info.name] = [
            _sample_record(lm, lm_tasks[m], s, m if info.name == "mmlu" else None)
            for m in members for s in res["samples"][m]]
        if score_contexts:
            _add_context_scores(lm, [s for m in members for s in res["samples"][m]], samples[info.name])

    provenance = environment(model)
    provenance.update(lm_eval_version=res.get("lm_eval_version"), task_versions=dict(res["versions"]),
                      lm_eval_max_length=res.get("max_length"), date=res.get("date"))
    result = AccuracyResult(
        tasks=scores, samples=samples, batch_size=batch_size, limit=limit, num_fewshot=num_fewshot, data=data,
        softmax_dtype=softmax_dtype, max_length=max_length, bootstrap_iters=bootstrap_iters, wall_s=wall,
        provenance=provenance, identity=dict(identity or {}),
        lm_eval_samples=dict(res["samples"]) if keep_lm_eval_samples else None,
        subset=subset, subset_seed=subset_seed if subset == "random" else None, engine=engine,
        engine_stats=lm.stats.to_dict() if hasattr(lm, "stats") else None)
    log.info("accuracy on %s in %.1f s: %s", ", ".join(scores), wall,
             ", ".join(f"{k} {v.metric} {v.score:.4f}" for k, v in scores.items() if v.score is not None))
    return result
