"""The report's view of one record: a `Row` with the measures a report shows, plus the helpers that
label cells (budget text, method titles) and tell which records are comparable (`settings`, `identity`).

Records are read as the runner writes them (bench/session.py) and never changed; a missing part reads as
None, so a record of an older or newer schema still renders.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

DENSE = "dense"


def dig(d: Any, *path: str, default: Any = None) -> Any:
    """d[path[0]][path[1]]... or `default` where a step is missing or not a dict."""
    for p in path:
        if not isinstance(d, dict) or d.get(p) is None:
            return default
        d = d[p]
    return d


def number(x: Any) -> float | None:
    """A finite float, or None (NaN, inf, None, strings and booleans are not numbers here)."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) else None


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def method_order() -> list[str]:
    """Methods in registry order (the order `bench ls methods` lists them; importing it loads no torch)."""
    try:
        import methods

        return list(methods.REGISTRY)
    except ImportError:  # pragma: no cover - the package ships with the harness
        return []


def method_title(name: str) -> tuple[str, str]:
    """(title, arXiv id) of a registered method, or ("", "")."""
    try:
        import methods

        entry = methods.REGISTRY.get(name)
    except ImportError:  # pragma: no cover
        entry = None
    return (entry[1], entry[2]) if entry else ("", "")


def budget_label(budget: dict[str, Any] | None) -> str:
    if not budget:
        return "-"
    if budget.get("ratio") is not None:
        return f"ratio {budget['ratio']:g}"
    n = budget.get("layers")
    return f"{n} layer{'' if n == 1 else 's'}"


def budget_sort(budget: dict[str, Any] | None) -> tuple:
    if not budget:
        return (0, 0.0)
    return (1, float(budget["ratio"])) if budget.get("ratio") is not None else (2, float(budget.get("layers") or 0))


def settings(record: dict[str, Any]) -> dict[str, Any]:
    """What must match for two records to sit in one table (evaluation settings, device, dtype)."""
    acc = record.get("accuracy") or {}
    lat = record.get("latency") or {}
    prov = record.get("provenance") or {}
    device = str(prov.get("device") or lat.get("device") or "?").split(":")[0]
    return {
        "tasks": sorted(acc.get("tasks") or {}),
        "limit": acc.get("limit"),
        "num_fewshot": acc.get("num_fewshot"),
        "batch_size": acc.get("batch_size", prov.get("batch_size")),
        "perplexity": [[p.get("corpus"), p.get("window"), p.get("windows")] for p in record.get("perplexity") or []],
        "latency": [lat.get("prompt_tokens"), lat.get("new_tokens"), lat.get("batch_size")] if lat else None,
        "dtype": prov.get("dtype") or lat.get("dtype"),
        "device": device,
    }


def identity(record: dict[str, Any]) -> tuple[str, str, str, str, Any]:
    """(model, method, params, budget, seed): what a cell is, independent of how it was evaluated."""
    cell = record.get("cell") or {}
    return (str(cell.get("model")), str(cell.get("method")), canonical(cell.get("params") or {}),
            canonical(cell.get("budget")), cell.get("seed"))


@dataclass
class Row:
    """One finished cell."""

    record: dict[str, Any]
    variant: str = ""  # the parameters that tell this method's rows apart, when a group holds several

    @property
    def key(self) -> str:
        return self.record["key"]

    @property
    def model(self) -> str:
        return str(dig(self.record, "cell", "model"))

    @property
    def method(self) -> str:
        return str(dig(self.record, "cell", "method"))

    @property
    def dense(self) -> bool:
        return self.method == DENSE

    @property
    def budget(self) -> dict[str, Any] | None:
        return dig(self.record, "cell", "budget")

    @property
    def seed(self) -> Any:
        return dig(self.record, "cell", "seed")

    @property
    def params(self) -> dict[str, Any]:
        return dig(self.record, "cell", "params", default={})

    @property
    def label(self) -> str:
        return f"{self.method} ({self.variant})" if self.variant else self.method

    @property
    def finished_at(self) -> str:
        return str(self.record.get("finished_at") or "")

    # ------------------------------------------------------------------------------------- structure

    @property
    def n_layers(self) -> int | None:
        return dig(self.record, "pruning", "n_layers") or dig(self.record, "model", "n_layers")

    @property
    def layers_removed(self) -> int | None:
        return 0 if self.dense else dig(self.record, "pruning", "layers_removed")

    @property
    def params_after(self) -> int | None:
        if self.dense:
            return dig(self.record, "model", "params_total")
        return dig(self.record, "pruning", "params_after")

    @property
    def param_ratio(self) -> float | None:
        return 0.0 if self.dense else number(dig(self.record, "pruning", "param_ratio"))

    @property
    def per_layer(self) -> list[float] | None:
        scores = dig(self.record, "pruning", "scores", "per_layer")
        return [float(s) for s in scores] if isinstance(scores, list) and scores else None

    # ------------------------------------------------------------------------------------- measures

    @property
    def tasks(self) -> dict[str, dict[str, Any]]:
        return dig(self.record, "accuracy", "tasks", default={})

    def task_score(self, task: str) -> tuple[float | None, float | None]:
        """(headline score, its stderr) of one task; stderr is None where lm-eval gives none."""
        t = self.tasks.get(task) or {}
        metric = t.get("metric") or "acc"
        return number(t.get(metric, t.get("score"))), number(t.get(f"{metric}_stderr"))

    @property
    def accuracy(self) -> float | None:
        """The mean of the tasks' headline metrics (as the record's `accuracy.average` states)."""
        return number(dig(self.record, "accuracy", "average"))

    @property
    def accuracy_stderr(self) -> float | None:
        """The mean's stderr, sqrt(sum se_i^2) / k (tasks independent); None unless every task has one."""
        errs = [self.task_score(t)[1] for t in self.tasks]
        if not errs or None in errs:
            return None
        return math.sqrt(sum(e * e for e in errs)) / len(errs)

    @property
    def stability(self) -> float | None:
        return number(dig(self.record, "stability", "mean"))

    @property
    def perplexity(self) -> dict[str, dict[str, Any]]:
        return {str(p.get("corpus")): p for p in self.record.get("perplexity") or []}

    @property
    def decode_tok_s(self) -> float | None:
        return number(dig(self.record, "latency", "decode_tokens_per_s"))

    @property
    def prefill_ms(self) -> float | None:
        return number(dig(self.record, "latency", "prefill_ms"))

    @property
    def train_s(self) -> float | None:
        """Healing or replacement training wall seconds (bench.train's cost: `wall_seconds`)."""
        training = dig(self.record, "pruning", "training") or {}
        return number(training.get("wall_seconds", training.get("seconds")))

    @property
    def prune_s(self) -> float | None:
        """Calibration capture + plan + surgery (the pipeline's seconds without training)."""
        if self.dense:
            return None
        pipeline = number(dig(self.record, "pruning", "seconds"))
        if pipeline is None:
            return None
        capture = number(dig(self.record, "pruning", "capture_seconds")) or 0.0
        return capture + pipeline - (self.train_s or 0.0)
