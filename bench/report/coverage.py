"""What a planned run still lacks: the cells of its matrix (a preset or run file, expanded by the CLI with
bench.run.cells) that a store does not hold finished, listed on the pages beside the provenance, so a page
made from a run in progress says which comparisons are not there yet.

A planned cell is plain data (`PlannedCell`), so this layer needs nothing of bench.run: the CLI passes the
expanded matrix in. A cell is covered when the store holds a finished record under its key (its evaluation
may be another cell's: bench.run.session shares identical pruned models).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PlannedCell:
    key: str
    model: str
    method: str                 # "dense" for the unpruned reference
    ratio: float | None = None
    layers: int | None = None
    seed: int | None = None

    @property
    def budget(self) -> str:
        if self.method == "dense":
            return ""
        return f"ratio {self.ratio:g}" if self.ratio is not None else f"{self.layers} layers"


@dataclass(frozen=True)
class Plan:
    name: str                   # what the run is called on the page: a preset name or a run file's path
    cells: tuple[PlannedCell, ...]


def _seeds(seeds: Iterable[int | None]) -> str:
    values = sorted(s for s in set(seeds) if s is not None)
    return ("seed " if len(values) == 1 else "seeds ") + ", ".join(str(s) for s in values) if values else ""


def missing_cells(plan: Plan, finished_keys: set[str]) -> list[PlannedCell]:
    return [c for c in plan.cells if c.key not in finished_keys]


def coverage_lines(plan: Plan, finished_keys: set[str]) -> list[str]:
    """Markdown list lines: how many of the plan's cells the store holds, then the missing ones per model and
    method, budgets with their seeds (`sleb`: ratio 0.125 seeds 1, 2 · ratio 0.25 seeds 0, 1, 2)."""
    missing = missing_cells(plan, finished_keys)
    done = len(plan.cells) - len(missing)
    head = f"- Planned run `{plan.name}`: {done} of {len(plan.cells)} cells are in this store"
    if not missing:
        return [head + "; none is missing."]
    lines = [head + f"; {len(missing)} missing (the comparisons they would enter are not on this page):"]
    by_model: dict[str, dict[str, list[PlannedCell]]] = {}
    for c in missing:
        by_model.setdefault(c.model, {}).setdefault(c.method, []).append(c)
    for model, per_method in by_model.items():
        parts = []
        for method, cells in per_method.items():
            if method == "dense":
                parts.append("the dense cell")
                continue
            budgets: dict[str, list[int | None]] = {}
            for c in cells:
                budgets.setdefault(c.budget, []).append(c.seed)
            parts.append(f"`{method}` " + " · ".join(f"{b} {_seeds(s)}".strip() for b, s in budgets.items()))
        lines.append(f"  - {model}: " + "; ".join(parts))
    return lines


def plan_of(name: str, cells: Sequence[dict]) -> Plan:
    """A Plan from plain dicts (the CLI's expansion of a run spec: key, model, method, ratio, layers, seed)."""
    return Plan(name, tuple(PlannedCell(**c) for c in cells))
