"""The report's view of one record: a `Row` with the measures a report shows, plus the helpers that
label cells (budget text, method titles) and tell which records are comparable (`settings`, `identity`).

Rows read typed records (`bench.core.record.CellRecord`, migrated to the current schema on reading); a missing
part reads as None, so a record of an older or newer schema still renders.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bench.core.record import CellRecord, number  # noqa: F401 - number: the report's finite-float helper
from bench.metrics import load_record

DENSE = "dense"


def dig(d: Any, *path: str, default: Any = None) -> Any:
    """d[path[0]][path[1]]... or `default` where a step is missing or not a dict."""
    for p in path:
        if not isinstance(d, dict) or d.get(p) is None:
            return default
        d = d[p]
    return d


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def method_order() -> list[str]:
    """Methods in registry order (the order `bench ls methods` lists them; importing it loads no torch)."""
    try:
        import methods

        return methods.list_methods()
    except ImportError:  # pragma: no cover - the package ships with the harness
        return []


def method_title(name: str) -> tuple[str, str]:
    """(title, arXiv id) of a registered method, or ("", "")."""
    try:
        import methods

        info = methods.info(name) if name in methods.list_methods() else None
    except ImportError:  # pragma: no cover
        info = None
    return (info.title, info.paper) if info else ("", "")


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


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def differences(base: dict[str, Any] | None, cur: dict[str, Any] | None, prefix: str = "") -> list[str]:
    """`name: old → new` for every leaf that differs between two (nested) mappings."""
    a, b = _flat(base or {}, prefix), _flat(cur or {}, prefix)
    return [f"{k}: {_short(a.get(k))} → {_short(b.get(k))}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _short(v: Any) -> str:
    text = "–" if v is None else json.dumps(v, default=str) if isinstance(v, list | dict) else str(v)
    return text if len(text) <= 40 else text[:37] + "..."


def settings(record: CellRecord) -> dict[str, Any]:
    """What must match for two records to sit in one table (evaluation settings, device, dtype)."""
    acc, lat, prov = record.accuracy, record.latency, record.provenance
    device = str(prov.get("device") or (lat.device if lat else None) or "?").split(":")[0]
    return {
        "tasks": sorted(acc.tasks) if acc else [],
        "limit": acc.limit if acc else None,
        "num_fewshot": acc.num_fewshot if acc else None,
        "batch_size": acc.batch_size if acc else prov.get("batch_size"),
        "perplexity": [[p.corpus, p.window, p.windows] for p in record.perplexity],
        "latency": [lat.prompt_tokens, lat.new_tokens, lat.batch_size] if lat else None,
        "dtype": prov.get("dtype") or (lat.dtype if lat else None),
        "device": device,
    }


def identity(record: CellRecord) -> tuple[str, str, str, str, Any]:
    """(model, method, params, budget, seed): what a cell is, independent of how it was evaluated."""
    cell = record.cell
    return (str(cell.model), str(cell.method), canonical(cell.params or {}), canonical(cell.budget), cell.seed)


@dataclass
class Row:
    """One finished cell."""

    record: CellRecord  # a plain record (a dict) is typed on construction
    variant: str = ""  # the parameters that tell this method's rows apart, when a group holds several

    def __post_init__(self):
        self.record = load_record(self.record)

    @property
    def key(self) -> str:
        return self.record.key

    @property
    def model(self) -> str:
        return str(self.record.cell.model)

    @property
    def method(self) -> str:
        return str(self.record.cell.method)

    @property
    def dense(self) -> bool:
        return self.method == DENSE

    @property
    def budget(self) -> dict[str, Any] | None:
        return self.record.cell.budget

    @property
    def seed(self) -> Any:
        return self.record.cell.seed

    @property
    def params(self) -> dict[str, Any]:
        return self.record.cell.params or {}

    @property
    def label(self) -> str:
        return f"{self.method} ({self.variant})" if self.variant else self.method

    @property
    def finished_at(self) -> str:
        return str(self.record.finished_at or "")

    # ------------------------------------------------------------------------------------- structure

    @property
    def n_layers(self) -> int | None:
        pruning, model = self.record.pruning, self.record.model
        return (pruning.n_layers if pruning else None) or (model.n_layers if model else None)

    @property
    def layers_removed(self) -> int | None:
        return 0 if self.dense else (self.record.pruning.layers_removed if self.record.pruning else None)

    @property
    def units(self) -> dict[str, list[int]] | None:
        """Dense layer indices of what the cell dropped: `attn` and `mlp` sublayers dropped alone, `blocks`
        (whole layers); None for whole-layer plans (no `drop_sublayers` op) and the dense model."""
        pruning = self.record.pruning
        if self.dense or pruning is None:
            return None
        return sublayer_units(pruning.ops or [], pruning.removed_layers or [])

    @property
    def params_after(self) -> int | None:
        if self.dense:
            return self.record.model.params_total if self.record.model else None
        return self.record.pruning.params_after if self.record.pruning else None

    @property
    def param_ratio(self) -> float | None:
        return 0.0 if self.dense else number(self.record.pruning.param_ratio if self.record.pruning else None)

    @property
    def per_layer(self) -> list[float] | None:
        scores = (self.record.pruning.scores or {}).get("per_layer") if self.record.pruning else None
        return [float(s) for s in scores] if isinstance(scores, list) and scores else None

    # ------------------------------------------------------------------------------------- measures

    @property
    def tasks(self) -> dict[str, Any]:
        """task -> its typed scores (bench.evaluate.multiple_choice.TaskScore)."""
        return self.record.accuracy.tasks if self.record.accuracy else {}

    def task_score(self, task: str) -> tuple[float | None, float | None]:
        """(headline score, its stderr) of one task; stderr is None where lm-eval gives none."""
        t = self.tasks.get(task)
        return t.headline() if t is not None else (None, None)

    @property
    def accuracy(self) -> float | None:
        """The mean of the tasks' headline metrics (as the record's `accuracy.average` states)."""
        return number(self.record.accuracy.average) if self.record.accuracy else None

    @property
    def accuracy_stderr(self) -> float | None:
        """The mean's stderr, sqrt(sum se_i^2) / k (tasks independent); None unless every task has one."""
        return self.record.accuracy.average_stderr() if self.record.accuracy else None

    @property
    def stability(self) -> float | None:
        return number(self.record.stability.mean) if self.record.stability else None

    @property
    def perplexity(self) -> dict[str, Any]:
        """corpus -> its typed entry (bench.evaluate.windowed_perplexity.PerplexityResult)."""
        return {str(p.corpus): p for p in self.record.perplexity}

    def perplexity_of(self, corpus: str) -> float | None:
        p = self.perplexity.get(corpus)
        return p.perplexity if p is not None else None

    @property
    def decode_tok_s(self) -> float | None:
        return number(self.record.latency.decode_tokens_per_s) if self.record.latency else None

    @property
    def prefill_ms(self) -> float | None:
        return number(self.record.latency.prefill_ms) if self.record.latency else None

    @property
    def decode_speedup(self) -> float | None:
        """The record's own decode speed-up over the dense model (measured interleaved in the cell)."""
        return number(self.record.latency.decode_speedup_vs_dense) if self.record.latency else None

    @property
    def train_s(self) -> float | None:
        """Healing or replacement training wall seconds (bench.train's cost: `wall_seconds`)."""
        return self.record.pruning.train_s if self.record.pruning else None

    @property
    def prune_s(self) -> float | None:
        """Calibration capture + plan + surgery (the pipeline's seconds without training)."""
        return None if self.dense or self.record.pruning is None else self.record.pruning.prune_s


def sublayer_units(ops: list[dict], removed: list[int]) -> dict[str, list[int]] | None:
    """What a plan's `drop_sublayers` op dropped (as methods.base.PrunePlan.units, without importing it):
    None when the plan has no such op."""
    subs = [op for op in ops if isinstance(op, dict) and op.get("op") == "drop_sublayers"]
    if not subs:
        return None
    attn, mlp = set(), set()
    for op in subs:
        both = set(op.get("attn", [])) & set(op.get("mlp", []))
        attn |= set(op.get("attn", [])) - both
        mlp |= set(op.get("mlp", [])) - both
    return {"attn": sorted(attn), "mlp": sorted(mlp), "blocks": sorted(int(i) for i in removed)}


def newest_date(records: list[CellRecord]) -> str | None:
    """The newest record's finish date (a page's or a baseline's date: the same store gives the same one)."""
    dates = [str(r.finished_at or r.provenance.get("date") or "") for r in records]
    dates = [d for d in dates if d]
    return max(dates) if dates else None
