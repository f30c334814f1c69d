"""Stability (LLM-Streamline, Chen et al., ICLR 2025, Eq. 5-6): do pruned and dense models agree per sample?

For sample i of a multiple-choice task with k choices, the *dense* model's perplexity of choice j is
PPL_ij = exp(-loglik_ij / n_tokens_ij) (n_tokens: the continuation's token count). Its sample standard
deviation std_i (ddof=1, over the k choices) weights the sample by exp(std_i): samples the dense model
separates sharply weigh more. A sample agrees when it is correct under both models or wrong under both
(not necessarily the same wrong choice). Per task:

    Stability = sum_i exp(std_i) * [i agrees] / sum_i exp(std_i)

and a suite's stability is the plain mean over its tasks. The sums are taken in log space
(logsumexp), so large perplexity spreads cannot overflow.

The official script (`calculate_stability.py`) differs: population std (ddof 0) and a bug, it counts the
agreeing samples M and then sums the weights of the *first M samples* rather than of the agreeing ones.
`official=True` reproduces it, for comparison with published numbers only.

What is spread matters a great deal, and the default here is `spread="nll"`: the spread of the per-choice
mean negative log-likelihood per token (log PPL), which is what the official OpenCompass pipeline fed the
formula. The script takes std over OpenCompass's per-choice "PPL" field, and OpenCompass's `get_ppl`
returns the mean token cross-entropy (a log-perplexity, not its exp), taken over question + choice tokens.
`span="question+answer"` (the default) follows it: the choice's mean NLL over its context and its answer
tokens, -(context_loglik_j + loglik_j) / (context_n_tokens_j + n_tokens_j), from the dense cell's context
scores (`bench.evaluate.multiple_choice`, `score_contexts`). `span="answer"` takes the answer tokens only (what
lm-eval scores, and what older dense records allow): on ARC-Easy it put a third of the weight on one of 50
documents (Kish effective sample size 5.9 of 50), because a short answer's mean NLL swings widely; the
shared question damps those swings, as in the official pipeline. A dense record without context scores
falls back to "answer", and the result says which span it used. `spread="ppl"` keeps the paper's
wording (the spread of true perplexities) as an option: on real models exp(std) then spans thousands of
orders of magnitude and one sample carries all the weight (SmolLM2-135M on 300 PIQA docs: std from 0.02
to 29,000, stability exactly 0 or 1; Kish effective sample size 1.0 on every dense task set of the quick
preset), so it says nothing. With "nll" the largest share is 2.4 % and stability 0.90 against 0.88 plain
agreement, for layers 20-21 removed.

"Correct" is judged by each task's headline metric (acc_norm where the page shows acc_norm); `stability`
takes task -> metric. Beside the weighted figure a `StabilityResult` carries what a reader needs to judge
it: plain (unweighted) agreement, the Kish effective sample size of the weights, (sum w)^2 / sum w^2 (how
many equally weighted documents the weighted mean is worth), and a 95 % percentile interval from a seeded
bootstrap over documents (stratified by task for the mean over tasks).

Everything here is a pure function over plain per-sample records, as `bench.evaluate.multiple_choice` keeps
them: {"doc_id", optional "subtask", "loglik": [..], "n_tokens": [..], "acc": 0/1, "acc_norm": 0/1}.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.core.record import Part

Record = Mapping[str, Any]


def choice_perplexities(record: Record) -> list[float]:
    """PPL_ij = exp(-loglik_ij / n_tokens_ij) for each choice j of one sample."""
    return [math.exp(-ll / n) for ll, n in zip(record["loglik"], record["n_tokens"], strict=True)]


def _std(values: Sequence[float], ddof: int) -> float:
    k = len(values)
    if k - ddof <= 0:
        raise ValueError(f"a standard deviation with ddof={ddof} needs more than {ddof} values, got {k}")
    scale = max(abs(v) for v in values) or 1.0   # scaled, so that huge perplexities cannot overflow the squares
    scaled = [v / scale for v in values]
    mean = sum(scaled) / k
    return scale * math.sqrt(sum((v - mean) ** 2 for v in scaled) / (k - ddof))


SPREADS = ("ppl", "nll")
SPANS = ("question+answer", "answer")


def has_context_scores(record: Record) -> bool:
    return "context_loglik" in record and "context_n_tokens" in record


def choice_nlls(record: Record, span: str = "answer") -> list[float]:
    """Mean negative log-likelihood per token of each choice: over its answer tokens, -loglik_ij / n_tokens_ij
    (= log PPL_ij), or with `span="question+answer"` over its context and answer tokens together."""
    if span == "answer":
        return [-ll / n for ll, n in zip(record["loglik"], record["n_tokens"], strict=True)]
    return [-(cl + ll) / (cn + n) for cl, cn, ll, n in zip(record["context_loglik"], record["context_n_tokens"],
                                                            record["loglik"], record["n_tokens"], strict=True)]


def log_weight(record: Record, ddof: int = 1, spread: str = "nll", span: str = "answer") -> float:
    """log of the sample's weight exp(std_i): simply std_i, of the choices' perplexities (or NLLs)."""
    if spread not in SPREADS:
        raise ValueError(f"spread must be one of {SPREADS}, got {spread!r}")
    if span not in SPANS:
        raise ValueError(f"span must be one of {SPANS}, got {span!r}")
    if spread == "ppl":
        return _std([math.exp(v) for v in choice_nlls(record, span)], ddof)
    return _std(choice_nlls(record, span), ddof)


def is_correct(record: Record, metric: str = "acc") -> bool:
    """Whether the sample was answered correctly under `metric` (acc when the task has no `metric`)."""
    value = record.get(metric, record.get("acc"))
    if value is None:
        raise ValueError(f"sample {record.get('doc_id')} carries neither {metric!r} nor 'acc'")
    return bool(value)


def _key(record: Record) -> tuple[str, int]:
    return (str(record.get("subtask", "")), int(record["doc_id"]))


def _logsumexp(xs: Sequence[float]) -> float:
    if not xs:
        return -math.inf
    top = max(xs)
    return top + math.log(sum(math.exp(x - top) for x in xs))


def agreement(dense: Sequence[Record], pruned: Sequence[Record], metric: str = "acc") -> list[bool]:
    """Per dense sample (in dense order): correct under both models or wrong under both."""
    by_key = {_key(r): r for r in pruned}
    missing = [k for k in map(_key, dense) if k not in by_key]
    if missing or len(by_key) != len(dense):
        raise ValueError(f"dense and pruned samples differ ({len(dense)} vs {len(by_key)} samples, "
                         f"{len(missing)} dense samples unmatched); evaluate both with the same tasks and limit")
    return [is_correct(r, metric) == is_correct(by_key[_key(r)], metric) for r in dense]


def task_stability(dense: Sequence[Record], pruned: Sequence[Record], *, metric: str = "acc",
                   official: bool = False, spread: str = "nll", span: str = "answer") -> float:
    """Stability of one task from dense and pruned per-sample records (weights from the dense model only)."""
    if not dense:
        raise ValueError("no samples")
    agree = agreement(dense, pruned, metric)
    logw = [log_weight(r, ddof=0 if official else 1, spread=spread, span=span) for r in dense]
    if official:  # the script's bug: the weights of the first M samples, M = number of agreeing samples
        chosen = logw[:sum(agree)]
    else:
        chosen = [w for w, a in zip(logw, agree, strict=True) if a]
    return math.exp(_logsumexp(chosen) - _logsumexp(logw))


def is_multiple_choice(records: Sequence[Record]) -> bool:
    return bool(records) and all(len(r["loglik"]) >= 2 for r in records)


def effective_sample_size(log_weights: Sequence[float]) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2 of weights given as logs (1 = one sample decides)."""
    if not log_weights:
        return 0.0
    return math.exp(2 * _logsumexp(log_weights) - _logsumexp([2 * w for w in log_weights]))


def _bootstrap(parts: Sequence[tuple[Sequence[float], Sequence[bool]]], iters: int, seed: int,
               level: float) -> tuple[float, float]:
    """Percentile interval of the mean over tasks of each task's weighted agreement, documents resampled
    within each task (seeded; tasks drawn in the given order)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    total = np.zeros(iters)
    for logw, agree in parts:
        lw = np.asarray(logw, dtype=np.float64)
        w = np.exp(lw - lw.max())
        a = np.asarray(agree, dtype=np.float64)
        n = len(w)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=iters)
        total += (counts @ (w * a)) / (counts @ w)
    total /= len(parts)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(total, [tail, 1.0 - tail])
    return float(low), float(high)


@dataclass
class StabilityResult(Part):
    """Per-task stability and their mean, with plain agreement, effective sample size and a 95 % interval;
    which formula, spread and correctness metric produced them. The record part `stability`."""

    optional = ("span",)   # absent from records written before the span was chosen

    per_task: dict[str, float] = field(default_factory=dict)
    mean: float | None = None
    metric: str | None = None
    official: bool | None = None
    spread: str | None = None
    span: str | None = None          # what the NLL spread is taken over: question+answer | answer
    n: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)   # tasks that are not multiple choice (e.g. lambada)
    metrics: dict[str, str] = field(default_factory=dict)            # task -> metric that judged correctness
    agreement: dict[str, float] = field(default_factory=dict)        # task -> unweighted share agreeing
    agreement_mean: float | None = None
    ess: dict[str, float] = field(default_factory=dict)              # task -> Kish effective sample size
    ci: dict[str, list[float]] = field(default_factory=dict)         # task -> [low, high]
    mean_ci: list[float] = field(default_factory=list)               # [low, high] of the mean over tasks
    ci_level: float | None = None


CI_LEVEL = 0.95
CI_ITERS = 2000
CI_SEED = 0


def stability(dense: Mapping[str, Sequence[Record]], pruned: Mapping[str, Sequence[Record]], *,
              metric: str | Mapping[str, str] = "acc", official: bool = False,
              spread: str = "nll", span: str = "question+answer") -> StabilityResult:
    """Stability per task and averaged over tasks, for every multiple-choice task present in both.

    `span="question+answer"` needs the dense records' context scores; where any dense record lacks them
    the whole result uses "answer" (stated in `span`).

    `dense`/`pruned` map task -> per-sample records (`AccuracyResult.samples`). `metric` decides what
    "correct" means: one name for all tasks, or task -> name (each task's headline metric, as the runner
    passes it); tasks lm-eval scores with acc only fall back to acc.
    """
    per_task, n, skipped, metrics, agree_share, ess, ci, parts = {}, {}, [], {}, {}, {}, {}, []
    if span not in SPANS:
        raise ValueError(f"span must be one of {SPANS}, got {span!r}")
    if span != "answer" and not all(has_context_scores(r) for rs in dense.values() for r in rs):
        span = "answer"
    for task, records in dense.items():
        if task not in pruned:
            continue
        if not is_multiple_choice(records):
            skipped.append(task)
            continue
        m = metric if isinstance(metric, str) else metric.get(task, "acc")
        per_task[task] = task_stability(records, pruned[task], metric=m, official=official, spread=spread,
                                        span=span)
        agree = agreement(records, pruned[task], m)
        logw = [log_weight(r, ddof=0 if official else 1, spread=spread, span=span) for r in records]
        n[task], metrics[task] = len(records), m
        agree_share[task] = sum(agree) / len(agree)
        ess[task] = effective_sample_size(logw)
        if not official:
            ci[task] = list(_bootstrap([(logw, agree)], CI_ITERS, CI_SEED, CI_LEVEL))
            parts.append((logw, agree))
    mean = sum(per_task.values()) / len(per_task) if per_task else math.nan
    label = metric if isinstance(metric, str) else "per-task"
    return StabilityResult(
        per_task=per_task, mean=mean, metric=label, official=official, spread=spread, span=span, n=n,
        skipped=skipped,
        metrics=metrics, agreement=agree_share,
        agreement_mean=sum(agree_share.values()) / len(agree_share) if agree_share else math.nan, ess=ess, ci=ci,
        mean_ci=list(_bootstrap(parts, CI_ITERS, CI_SEED, CI_LEVEL)) if parts else [], ci_level=CI_LEVEL)


def stability_of(dense_result, pruned_result, **kwargs) -> StabilityResult:
    """Stability between two `AccuracyResult`s, after checking they were evaluated the same way; correctness
    by each task's headline metric unless `metric` is given."""
    mismatched = {k: (v, pruned_result.settings()[k]) for k, v in dense_result.settings().items()
                  if pruned_result.settings()[k] != v}
    if mismatched:
        raise ValueError(f"dense and pruned accuracy were evaluated differently: {mismatched}")
    kwargs.setdefault("metric", {name: score.metric for name, score in dense_result.tasks.items()})
    return stability(dense_result.samples, pruned_result.samples, **kwargs)
