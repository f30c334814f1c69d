"""The Pruner interface: `plan` (pure data) -> `apply` (surgery through bench.models.arch) -> optional `heal`.

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
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bench.core.errors import BudgetError, ConfigError

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

    def layers_for(self, model) -> int:
        """`to_layers` for `model`: its decoder layers' parameter counts and its total (bench.models.arch)."""
        from bench.models import arch

        return self.to_layers(arch.layer_parameter_counts(model), arch.count_parameters(model))

    def target_parameters(self, layer_params: list[int], total_params: int) -> float:
        """The budget in parameters: `ratio * total_parameters`, or `layers` mean-sized decoder layers."""
        if self.layers is not None:
            return self.layers * sum(layer_params) / len(layer_params)
        return self.ratio * total_params

    @staticmethod
    def take_next(removed: int, size: int, target: float) -> bool:
        """Sub-layer budgets (every method alike): units are removed in the method's order while the next one
        brings the removed parameters closer to `target` (a tie stops), and at least one is removed."""
        return removed == 0 or abs(removed + size - target) < abs(removed - target)

    @classmethod
    def prefix_length(cls, sizes: list[int], target: float) -> int:
        """How many units of an ordered list `take_next` removes (the nearest cumulative count to `target`)."""
        removed, k = 0, 0
        for size in sizes:
            if not cls.take_next(removed, size, target):
                break
            removed, k = removed + size, k + 1
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
    ops: list[dict[str, Any]]  # ordered methods.ops operations as JSON (`ops.to_dict`); `typed_ops` reads them
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
    def typed_ops(self) -> list:
        """The operations as `methods.ops` dataclasses (Remove | Merge | Replace)."""
        from methods.ops import parse

        return [parse(op) for op in self.ops]

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

    def units(self) -> dict[str, list[int]]:
        """Dense layer indices of what the plan drops: `attn` and `mlp` sublayers dropped alone, and `blocks`
        (whole layers removed, merged or replaced: `removed_original`). Whole-layer plans have no sublayers."""
        attn: set[int] = set()
        mlp: set[int] = set()
        for op in self.ops:
            if op.get("op") == "drop_sublayers":  # sub-layer plans hold this one op, in dense indices
                both = set(op["attn"]) & set(op["mlp"])
                attn |= set(op["attn"]) - both
                mlp |= set(op["mlp"]) - both
        return {"attn": sorted(attn), "mlp": sorted(mlp), "blocks": sorted(self.removed_original)}

    def structure_hash(self) -> str:
        """Hash of what the plan does to the model (not of timings): equal plans prune equally."""
        key = json.dumps({"method": self.method, "n_layers": self.n_layers, "ops": self.ops,
                          "params": self.params}, sort_keys=True)
        return hashlib.sha256(key.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------- cost


class Search:
    """The measured cost of a pruner's search, for its plan's `cost`: the wall seconds of the `with` block
    (under `seconds`; None: not timed) and, with `model` given, what a bench.core.costmeter.CostMeter on the
    model's device measures (under `pruning`; count the work with `add`):

        with Search(model) as search:
            ...
            search.add(tokens=n)
        plan = self.removal_plan(model, budget, removed, scores, calib, search.cost())
    """

    def __init__(self, model=None, seconds: str | None = "search_seconds"):
        from bench.core.costmeter import CostMeter

        self.meter = CostMeter(next(model.parameters()).device) if model is not None else None
        self.key = seconds
        self.seconds = 0.0
        self._t0 = 0.0

    def __enter__(self) -> Search:
        if self.meter is not None:
            self.meter.__enter__()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._t0
        if self.meter is not None:
            self.meter.__exit__(*exc)

    def add(self, tokens: int = 0, steps: int = 0, flops: float = 0.0) -> None:
        self.meter.add(tokens=tokens, steps=steps, flops=flops)

    def elapsed(self) -> float:
        """Seconds since the block began (for progress logs)."""
        return time.perf_counter() - self._t0

    def cost(self, **first: Any) -> dict[str, Any]:
        """`first` (e.g. capture_seconds), then the block's seconds, then the meter's result."""
        out = {**first, **({self.key: self.seconds} if self.key else {})}
        return {**out, "pruning": self.meter.result()} if self.meter is not None else out


# ------------------------------------------------------------------------------------------------ pruner


def calib_provenance(calib) -> dict[str, Any] | None:
    """What a plan records about its calibration: the spec, and the document range and BOS rule."""
    if calib is None:
        return None
    return calib.describe() if hasattr(calib, "describe") else calib.spec.to_dict()


class Pruner(ABC):
    """A layer-pruning method. Subclasses set the class attributes (literals: the registry reads them from
    the source without importing torch, see `methods`), implement `plan`, and are decorated with
    `@methods.register`.

    Any method can be followed by LoRA healing (`heal=lora`, methods.lora): `lora` holds the recipe, the
    pipeline calls `heal_all` (the method's own `heal`, then LoRA) and `params_dict` records it.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    paper: ClassVar[str]  # arXiv id, or "" for baselines without a paper
    needs_calibration: ClassVar[bool] = True  # `plan` gets a bench.data.calibration.Calibration
    may_train: ClassVar[bool] = False  # some parameters make it train: the run's training data is in its keys
    exportable: bool = True  # the pruned model saves as a stock transformers checkpoint (likewise)
    order: ClassVar[int] = 100  # place in `bench ls methods` and the report tables

    @dataclass(frozen=True)
    class Params:
        pass

    def __init__(self, params: Any | None = None, lora: Any | None = None):
        self.params = params if params is not None else self.Params()
        self.lora = lora  # methods.lora.LoraHeal, or None

    @property
    def trains(self) -> bool:
        """Whether pruning with these parameters trains (and so needs training data)."""
        return self.lora is not None

    @abstractmethod
    def plan(self, model, calib, budget: Budget) -> PrunePlan:
        """Decide what to prune. `calib` is a bench.data.calibration.Calibration (None when not needed)."""

    def apply(self, model, plan: PrunePlan):
        """Apply the plan's layer operations in place (generic surgery through bench.models.arch)."""
        from methods.surgery import apply_ops

        return apply_ops(model, plan.ops)

    def heal(self, model, plan: PrunePlan, data) -> dict[str, Any] | None:
        """Optional training after `apply`; returns the measured cost, or None when nothing trains."""
        return None

    def heal_all(self, model, plan: PrunePlan, data) -> dict[str, Any] | None:
        """The method's own `heal`, then LoRA healing when asked; the measured cost (summed when both)."""
        own = self.heal(model, plan, data)
        if self.lora is None:
            return own
        from methods.lora import heal_lora

        lora = heal_lora(model, self.lora, data)
        plan.notes.append(f"Healed with LoRA (r {self.lora.lora_r}, alpha {self.lora.lora_alpha:g}, lr "
                          f"{self.lora.lora_lr:g}) on every linear map of the decoder layers, merged into the "
                          f"weights: {lora['steps']} steps on {lora['tokens']:,} tokens; see cost.training.")
        if own is None:
            return lora
        total = {k: own[k] + lora[k] for k in ("wall_seconds", "tokens", "steps", "flops")}
        peaks = [c["peak_memory_bytes"] for c in (own, lora) if c.get("peak_memory_bytes") is not None]
        return {**lora, **total, "peak_memory_bytes": max(peaks) if peaks else None, "stages": [own, lora]}

    # helpers for subclasses ------------------------------------------------------------------------

    def require_calib(self, calib):
        if calib is None:
            raise ConfigError(f"method {self.name} needs calibration data", "give a calibration spec (--calib)")
        return calib

    def params_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self.params)
        if self.lora is not None:
            from methods.lora import as_params

            out.update(as_params(self.lora))
        return out

    def sublayer_plan(self, model, budget: Budget, attn: list[int], mlp: list[int], scores: dict[str, Any],
                      calib=None, cost: dict[str, Any] | None = None) -> PrunePlan:
        """A plan that drops the attention sublayers of dense layers `attn` and the MLP sublayers of `mlp`
        (a layer in both is removed as a whole block): one `drop_sublayers` op in dense indices."""
        from bench.models import arch, sublayer
        from methods import ops

        per_layer = arch.layer_parameter_counts(model)
        units = sublayer.unit_parameters(model)
        attn, mlp = sorted(int(i) for i in attn), sorted(int(i) for i in mlp)
        blocks = sorted(set(attn) & set(mlp))
        removed_params = sum(per_layer[i] for i in blocks)
        removed_params += sum(units["attn"][i] for i in attn if i not in blocks)
        removed_params += sum(units["mlp"][i] for i in mlp if i not in blocks)
        return PrunePlan(
            method=self.name, n_layers=len(per_layer), ops=[ops.to_dict(ops.DropSublayers(attn, mlp))],
            removed_original=blocks, budget=budget.to_dict(), layers_removed=len(blocks),
            params_total=arch.count_parameters(model), params_removed=removed_params, scores=scores,
            params=self.params_dict(), calib=calib_provenance(calib), cost=dict(cost or {}),
        )

    def removal_plan(self, model, budget: Budget, removed: list[int], scores: dict[str, Any],
                     calib=None, cost: dict[str, Any] | None = None) -> PrunePlan:
        """A plan that deletes `removed` (dense indices) and nothing else."""
        from bench.models import arch
        from methods import ops

        per_layer = arch.layer_parameter_counts(model)
        removed = sorted(int(i) for i in removed)
        return PrunePlan(
            method=self.name, n_layers=len(per_layer), ops=[ops.to_dict(ops.Remove(removed))],
            removed_original=removed, budget=budget.to_dict(), layers_removed=len(removed),
            params_total=arch.count_parameters(model), params_removed=sum(per_layer[i] for i in removed),
            scores=scores, params=self.params_dict(), calib=calib_provenance(calib),
            cost=dict(cost or {}),
        )
