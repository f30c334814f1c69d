"""The cells of a run matrix and their keys.

Cells are models x methods x budgets x seeds, plus one dense cell per model. A cell's key hashes its
canonical spec (model fingerprint, method and its resolved parameters, budget, seed, evaluation and
calibration specs, device type, dtype) and the versions of the harness, torch, transformers and lm-eval,
so a rerun skips exactly the cells whose results would not change.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.run.config import MethodSpec, RunSpec

KEY_PACKAGES = ("torch", "transformers", "lm-eval")
DENSE = "dense"


@dataclass(frozen=True)
class Cell:
    model: str
    method: str  # "dense" for the unpruned reference
    params: tuple[tuple[str, Any], ...] = ()  # the method's resolved parameters (defaults filled)
    ratio: float | None = None
    layers: int | None = None
    seed: int | None = None
    key: str = ""

    @property
    def dense(self) -> bool:
        return self.method == DENSE

    @property
    def budget(self) -> dict[str, Any] | None:
        return None if self.dense else {"layers": self.layers, "ratio": self.ratio}

    def info(self) -> dict[str, Any]:
        """The cell as its record's `cell` part states it."""
        return {"kind": "dense" if self.dense else "pruned", "model": self.model, "method": self.method,
                "params": dict(self.params), "budget": self.budget, "seed": self.seed, "label": self.label}

    @property
    def label(self) -> str:
        if self.dense:
            return f"{self.model} · dense"
        budget = f"ratio {self.ratio:g}" if self.ratio is not None else f"{self.layers} layers"
        return f"{self.model} · {self.method} · {budget} · seed {self.seed}"


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def key_versions() -> dict[str, str | None]:
    from bench import __version__

    return {"harness": __version__, **{name: _version(name) for name in KEY_PACKAGES}}


@functools.cache
def model_fingerprint(name: str) -> str:
    """What identifies the weights: the GGUF sha256, a local folder's config and file sizes, or the hub id."""
    from bench.models import zoo

    entry = zoo.resolve(name)
    if entry.gguf_sha256:
        return f"gguf:{entry.gguf_sha256}"
    if entry.kind == "local-folder":
        folder = Path(entry.location)
        digest = hashlib.sha256((folder / "config.json").read_bytes())
        for f in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
            digest.update(f"{f.name}:{f.stat().st_size}".encode())
        return f"folder:{digest.hexdigest()[:16]}"
    return f"{entry.kind}:{entry.location}"


def device_and_dtype(spec: RunSpec) -> tuple[str, str]:
    """The device type and dtype the cells will run with (what a key depends on)."""
    from bench.core.device import cpu_has_fast_bf16, is_cuda, resolve_device, resolve_dtype

    if spec.device == "auto" and spec.executor == "slurm" and spec.slurm.gpus_per_cell > 0:
        device = "cuda"  # device-literal-ok: a Slurm cell given GPUs runs on CUDA, whatever this host has
    else:
        device = resolve_device(spec.device).type
    if spec.dtype != "auto":
        import torch

        return device, str(resolve_dtype(spec.dtype, torch.device("cpu"))).removeprefix("torch.")
    fast = is_cuda(device) or cpu_has_fast_bf16()
    return device, "bfloat16" if fast else "float32"


def calib_spec(spec: RunSpec, seed: int):
    from bench.data.calibration import CalibSpec

    return CalibSpec(seed=seed, **dataclasses.asdict(spec.calib))


def resolve_params(method: MethodSpec, seed: int, defaults: tuple[MethodSpec, ...] = ()) \
        -> tuple[tuple[str, Any], ...]:
    """The method's full parameters (the run's method_params under its own, then the method's defaults;
    validated); `seed` and `train_seed` parameters follow the run seed unless given."""
    import methods

    given = method.with_defaults(defaults).params_dict()
    fields = {f.name for f in dataclasses.fields(methods.get_class(method.name).Params)}
    for name in ("seed", "train_seed"):
        if name in fields and name not in given:
            given[name] = seed
    return tuple(sorted(methods.create(method.name, given).params_dict().items()))


def expand(spec: RunSpec) -> list[Cell]:
    """Every cell of the matrix, keyed: per model the dense cell first, then methods x budgets x seeds."""
    keyer = _Keyer(spec)
    cells = []
    for model in spec.models:
        cells.append(keyer(Cell(model.name, DENSE)))
        all_seeds = sorted({s for m in spec.methods for s in spec.seeds_for(m.name)}, key=_seed_order(spec.seeds))
        for seed in all_seeds:
            for method in (m for m in spec.methods if seed in spec.seeds_for(m.name)):
                params = resolve_params(method, seed, spec.method_params)
                for budget in spec.budgets:
                    cells.append(keyer(Cell(model.name, method.name, params, budget["ratio"], budget["layers"],
                                            seed)))
    return cells


def _seed_order(seeds: tuple[int, ...]):
    """The run's seeds in their given order, then any method-only seeds in increasing order."""
    return lambda s: (seeds.index(s), 0) if s in seeds else (len(seeds), s)


def dense_cell(spec: RunSpec, model: str) -> Cell:
    """The dense cell of `model`, keyed as `expand` keys it."""
    return _Keyer(spec)(Cell(model, DENSE))


class _Keyer:
    """cell -> the same cell with its key: sha256 of its canonical spec and the key versions."""

    def __init__(self, spec: RunSpec):
        self.device, self.dtype = device_and_dtype(spec)
        self.versions = key_versions()
        self.eval = dataclasses.asdict(spec.eval)
        self.calib = dataclasses.asdict(spec.calib)
        self.train = dataclasses.asdict(spec.train)

    def __call__(self, cell: Cell) -> Cell:
        needs_calib = not cell.dense and needs_calibration(cell.method)
        canonical = {
            "cell": {"model": cell.model, "weights": model_fingerprint(cell.model), "method": cell.method,
                     "params": [list(p) for p in cell.params], "budget": cell.budget, "seed": cell.seed},
            "eval": self.eval, "calib": self.calib if needs_calib else None,
            "train": self.train if not cell.dense and may_train(cell.method, dict(cell.params)) else None,
            "device": self.device, "dtype": self.dtype, "versions": self.versions,
        }
        blob = json.dumps(canonical, sort_keys=True, default=str).encode()
        return dataclasses.replace(cell, key=hashlib.sha256(blob).hexdigest()[:16])


def pruned_model_identity(plan: dict[str, Any]) -> str | None:
    """What a pruned model *is*, when its plan alone gives it: a hash of the dense layer count and the
    plan's operations, for plans of removals and rule-based merges with nothing trained or estimated.
    Two cells with equal identities (of the same dense model) hold bit-identical models, whatever method,
    seed or calibration chose them, so one evaluation serves both. None where the model depends on more
    than the plan: a replacement module (trained, or estimated from calibration), any training."""
    ops = plan.get("ops") or []
    if any(op.get("op") not in ("remove", "merge") for op in ops) or (plan.get("cost") or {}).get("training"):
        return None
    blob = json.dumps({"n_layers": plan.get("n_layers"), "ops": ops}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def needs_calibration(method: str) -> bool:
    import methods

    return methods.info(method).needs_calibration


def may_train(method: str, params: dict[str, Any] | None = None) -> bool:
    """Whether cells of `method` (with `params`) can train: by kind, or with LoRA healing asked for."""
    import methods

    info = methods.info(method)
    return info.may_train or info.trains or methods.heals_with_lora(params or {})


def run_may_train(spec: RunSpec) -> bool:
    """Whether any pruned cell of the run can train (so the run needs its training text): each method with
    the run's `method_params` under its own, as its cells get them (`resolve_params`)."""
    return any(may_train(m.name, m.with_defaults(spec.method_params).params_dict()) for m in spec.methods)
