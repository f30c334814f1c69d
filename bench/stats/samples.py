"""Per-sample records of several cells as aligned 0/1 correctness matrices, one per task.

A record is what `bench.evaluate.multiple_choice` keeps per document: {"doc_id", optional "subtask", "acc",
"acc_norm", ...}. Documents are matched by (subtask, doc_id); a document missing from any cell is left
out of that task (and counted), so a comparison only ever uses documents all its cells answered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Record = Mapping[str, Any]
Samples = Mapping[str, Sequence[Record]]   # task -> per-document records of one cell


def doc_key(record: Record) -> tuple[str, int]:
    return (str(record.get("subtask", "")), int(record["doc_id"]))


def correct(record: Record, metric: str) -> float:
    """1.0 when the document was answered correctly under `metric` (acc where the record lacks it)."""
    value = record.get(metric)
    if value is None:
        value = record.get("acc")
    if value is None:
        raise ValueError(f"sample {record.get('doc_id')} carries neither {metric!r} nor 'acc'")
    return float(value)


@dataclass(frozen=True)
class Aligned:
    """Correctness of `n_arms` cells on the documents they all answered: task -> (n_docs, n_arms) array."""

    tasks: dict[str, np.ndarray]
    dropped: dict[str, int]        # task -> documents left out because some cell lacked them

    @property
    def n_arms(self) -> int:
        return next(iter(self.tasks.values())).shape[1] if self.tasks else 0

    def means(self) -> np.ndarray:
        """Avg per arm: the unweighted mean over tasks of each task's accuracy, shape (n_arms,)."""
        return np.mean([m.mean(axis=0) for m in self.tasks.values()], axis=0)

    def arms(self, *index: int) -> Aligned:
        return Aligned({t: m[:, list(index)] for t, m in self.tasks.items()}, dict(self.dropped))


def align(cells: Sequence[Samples], metrics: Mapping[str, str]) -> Aligned:
    """Align the per-sample records of `cells` on the tasks in `metrics` (task -> headline metric) that
    every cell has. Raises ValueError when no task is shared."""
    tasks: dict[str, np.ndarray] = {}
    dropped: dict[str, int] = {}
    for task, metric in metrics.items():
        if not all(cell.get(task) for cell in cells):
            continue
        by_key = [{doc_key(r): r for r in cell[task]} for cell in cells]
        keys = [k for k in (doc_key(r) for r in cells[0][task]) if all(k in b for b in by_key)]
        if not keys:
            continue
        tasks[task] = np.array([[correct(b[k], metric) for b in by_key] for k in keys], dtype=np.float64)
        dropped[task] = max(len(b) for b in by_key) - len(keys)
    if not tasks:
        raise ValueError("the cells share no task with per-sample records")
    return Aligned(tasks, dropped)
