"""A plan's layer operations, typed: `Remove`, `Merge`, `Replace`, `DropSublayers`. A `PrunePlan` stores them as plain JSON
(`to_dict()`, the same shape as before: {"op": "remove", "layers": [...]}, ...); `parse` reads one back and
rejects unknown operations or keys. Indices are in the model's index space when the operation runs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from bench.core.errors import SurgeryError


@dataclass(frozen=True)
class Remove:
    """Delete these decoder layers."""

    layers: list[int]
    op: ClassVar[str] = "remove"


@dataclass(frozen=True)
class Merge:
    """Fold the layers `others` into the layer `base` with a merge rule (LaCo's RDSC: paper | official)."""

    base: int
    others: list[int]
    rule: str
    op: ClassVar[str] = "merge"


@dataclass(frozen=True)
class Replace:
    """Replace layers start..stop-1 with one trained module, named `module` (given when the plan is applied)."""

    start: int
    stop: int
    module: str
    op: ClassVar[str] = "replace"


@dataclass(frozen=True)
class DropSublayers:
    """Drop the attention sublayers of layers `attn` and the MLP sublayers of layers `mlp`, each with its
    norm (bench.models.sublayer); a layer in both lists is removed as a whole block."""

    attn: list[int]
    mlp: list[int]
    op: ClassVar[str] = "drop_sublayers"


Op = Remove | Merge | Replace | DropSublayers
KINDS: dict[str, type] = {cls.op: cls for cls in (Remove, Merge, Replace, DropSublayers)}


def to_dict(op: Op) -> dict[str, Any]:
    return {"op": op.op, **dataclasses.asdict(op)}


def parse(data: Op | dict[str, Any]) -> Op:
    """A typed operation from its JSON (a typed one is returned as it is)."""
    if not isinstance(data, dict):
        return data
    kind = data.get("op")
    if kind not in KINDS:
        raise SurgeryError(f"unknown plan operation {kind!r}", "the plan file may be from a newer version")
    cls = KINDS[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    args = {k: v for k, v in data.items() if k != "op"}
    if set(args) != names:
        raise SurgeryError(f"plan operation {kind!r} has keys {sorted(args)}, expected {sorted(names)}",
                           "the plan file may be from another version")
    return cls(**args)
