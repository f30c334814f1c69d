"""The Pruner interface: `plan` (pure data) -> `apply` (surgery through bench.arch) -> optional `heal`.

A `PrunePlan` is plain JSON: the ordered layer operations, the scores that chose them and the budget in
both units. Replaying `apply(model, plan)` on the dense model reproduces the pruned structure exactly.
Operations are expressed in the index space of the model *at the time the operation runs* (LaCo's
merges are sequential); `removed_original` gives the summary in the dense model's indices.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bench.errors import BudgetError, ConfigError

# ------------------------------------------------------------------------------------------------ budget


@dataclass(frozen=True)
class Budget:
    """How much to prune: a number of layers, or a share of the model's parameters (tied weights once).

    A ratio converts to layers the same way for every method: the nearest whole number of (mean-sized)
    decoder layers to `ratio * total_parameters`, at least 1. The plan then records the exact ratio.
    """

    layers: int | None = None
    ratio: float | None = None

    def __post_init__(self):
        if (self.layers is None) == (self.ratio is None):
            raise BudgetError("give exactly one of a layer count or a parameter ratio", "use --layers N or --ratio R")
        if self.ratio is not None and not 0.0 < self.ratio < 1.0:
            raise BudgetError(f"parameter ratio {self.ratio} is outside (0, 1)", "use e.g. --ratio 0.25")
        if self.layers is not None and self.layers < 1:
            raise BudgetError(f"layer budget {self.layers} must be at least 1", "use e.g. --layers 4")

    def to_layers(self, layer_params: list[int], total_params: int) -> int:
        n = len(layer_params)
        if self.layers is not None:
            k = self.layers
        else:
            mean_layer = sum(layer_params) / n
            k = max(1, int(math.floor(self.ratio * total_params / mean_layer + 0.5)))
        if k >= n:
            raise BudgetError(f"a budget of {k} layers leaves no layer of a {n}-layer model",
                              f"remove at most {n - 1} layers")
        return k

    def describe(self) -> str:
        return f"{self.layers} layers" if self.layers is not None else f"ratio {self.ratio:g}"

    def to_dict(self) -> dict[str, Any]:
        return {"layers": self.layers, "ratio": self.ratio}


# -------------------------------------------------------------------------------------------------- plan


@dataclass
class PrunePlan:
    """Which layers a method removes, merges or replaces, and why. Plain data; JSON round-trips."""

    method: str
    n_layers: int  # dense model's layer count
    ops: list[dict[str, Any]]  # ordered: {"op": "remove", "layers": [...]} | {"op": "merge", ...} | {"op": "replace", ...}
    removed_original: list[int]  # dense indices whose layer no longer exists as itself
    budget: dict[str, Any]  # {"layers": requested, "ratio": requested}
    layers_removed: int  # net layers removed
    params_total: int
    params_removed: int  # net parameters removed (replacement modules subtracted)
    scores: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # the method's parameters
    calib: dict[str, Any] | None = None
    cost: dict[str, Any] = field(default_factory=dict)  # scoring seconds, training cost, ...
    notes: list[str] = field(default_factory=list)

    @property
    def param_ratio(self) -> float:
        return self.params_removed / self.params_total

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["param_ratio"] = self.param_ratio
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PrunePlan:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def from_json(cls, text: str) -> PrunePlan:
        return cls.from_dict(json.loads(text))

    def structure_hash(self) -> str:
        """Hash of what the plan does to the model (not of timings): equal plans prune equally."""
        key = json.dumps({"method": self.method, "n_layers": self.n_layers, "ops": self.ops,
                          "params": self.params}, sort_keys=True)
        return hashlib.sha256(key.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------ pruner


class Pruner(ABC):
    """A layer-pruning method. Subclasses set the class attributes (literals: the registry reads them from
    the source without importing torch, see `methods`), implement `plan`, and are decorated with
    `@methods.register`."""

    name: ClassVar[str]
    title: ClassVar[str]
    paper: ClassVar[str]  # arXiv id, or "" for baselines without a paper
    needs_calibration: ClassVar[bool] = True  # `plan` gets a bench.calib.Calibration
    may_train: ClassVar[bool] = False  # some parameters make it train: the run's training data is in its keys
    trains: bool = False  # this instance heals or trains replacements (a property where parameters decide)
    exportable: bool = True  # the pruned model saves as a stock transformers checkpoint (likewise)
    order: ClassVar[int] = 100  # place in `bench ls methods` and the report tables

    @dataclass(frozen=True)
    class Params:
        pass

    def __init__(self, params: Any | None = None):
        self.params = params if params is not None else self.Params()

    @abstractmethod
    def plan(self, model, calib, budget: Budget) -> PrunePlan:
        """Decide what to prune. `calib` is a bench.calib.Calibration (None when not needed)."""

    def apply(self, model, plan: PrunePlan):
        """Apply the plan's layer operations in place (generic surgery through bench.arch)."""
        from methods.surgery import apply_ops

        return apply_ops(model, plan.ops)

    def heal(self, model, plan: PrunePlan, data) -> dict[str, Any] | None:
        """Optional training after `apply`; returns the measured cost, or None when nothing trains."""
        return None

    # helpers for subclasses ------------------------------------------------------------------------

    def require_calib(self, calib):
        if calib is None:
            raise ConfigError(f"method {self.name} needs calibration data", "give a calibration spec (--calib)")
        return calib

    def params_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.params)

    def removal_plan(self, model, budget: Budget, removed: list[int], scores: dict[str, Any],
                     calib=None, cost: dict[str, Any] | None = None) -> PrunePlan:
        """A plan that deletes `removed` (dense indices) and nothing else."""
        from bench import arch

        per_layer = arch.layer_parameter_counts(model)
        removed = sorted(int(i) for i in removed)
        return PrunePlan(
            method=self.name, n_layers=len(per_layer), ops=[{"op": "remove", "layers": removed}],
            removed_original=removed, budget=budget.to_dict(), layers_removed=len(removed),
            params_total=arch.count_parameters(model), params_removed=sum(per_layer[i] for i in removed),
            scores=scores, params=self.params_dict(), calib=calib.spec.to_dict() if calib is not None else None,
            cost=dict(cost or {}),
        )
