"""What the harness takes from lm-eval's internals, in one place below both of its users (the accuracy
evaluation, `bench.evaluate.multiple_choice`, and the evaluation engine, `bench.evaluate.engine.lm`):

- `task_manager`: lm-eval's TaskManager over the suite's own task folders only, built once;
- `counting_hflm_class`: HFLM that remembers each request's continuation token count as lm-eval tokenized
  it (the engine's `PrefixLM` subclasses it);
- `document_subset`: a seeded random subset of each task's documents (lm-eval's `samples=`);
- `sample_record` / `add_context_scores`: the compact per-sample record kept for every document
  (per-choice log-likelihoods, continuation token counts, gold index, acc/acc_norm; optionally each
  choice's context scored on its own), what stability needs.

Importing this module imports neither lm-eval nor torch (each function imports what it uses).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from bench.data import tasks as task_registry


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
def counting_hflm_class():
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


def sample_record(lm, task, sample: Mapping[str, Any], subtask: str | None) -> dict[str, Any]:
    """One document's compact record from lm-eval's logged sample (`lm`: a `counting_hflm_class` instance)."""
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


def add_context_scores(lm, raw_samples: Sequence[Mapping[str, Any]], records: list[dict[str, Any]]) -> None:
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
