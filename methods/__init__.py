"""The method registry: name -> lazy "module:Class". Importing this package imports no torch."""

from __future__ import annotations

import importlib
from typing import Any

from bench.errors import UnknownNameError

# name -> (lazy class path, title, arXiv id, needs calibration, trains: "no" | "optional" | "yes")
# The metadata is duplicated here so `bench ls methods` stays free of torch; a test checks it against
# the classes.
REGISTRY: dict[str, tuple[str, str, str, bool, str]] = {}


def register(name: str, path: str, title: str, paper: str, needs_calibration: bool, trains: str) -> None:
    if name in REGISTRY:
        raise ValueError(f"method {name!r} is registered twice")
    REGISTRY[name] = (path, title, paper, needs_calibration, trains)


register("shortgpt", "methods.shortgpt:ShortGPT", "ShortGPT (Block Influence)", "2403.03853", True, "no")
register("streamline", "methods.streamline:Streamline", "LLM-Streamline (contiguous cosine window)",
         "2403.19135", True, "optional")
register("laco", "methods.laco:LaCo", "LaCo (layer collapse, RDSC merge)", "2402.11187", True, "no")
register("last", "methods.last:LastLayers", "Last-layer baseline (reverse order, optional healing)",
         "2411.15558", False, "optional")
register("angular", "methods.angular:Angular", "Angular distance (Gromov et al.)", "2403.17887", True, "no")
register("random", "methods.random_layers:RandomLayers", "Random layers (seeded floor)", "", False, "no")
register("sleb", "methods.sleb:SLEB", "SLEB (iterative greedy block removal)", "2402.09025", True, "no")
register("ppl", "methods.ppl:PPL", "Shortened-LLaMA PPL (one-block removal perplexity)", "2402.02834", True, "no")
register("taylor", "methods.taylor:Taylor", "Shortened-LLaMA Taylor+ (first-order weight importance)", "2402.02834",
         True, "no")
register("replaceme", "methods.replaceme:ReplaceMe", "ReplaceMe (training-free linear block replacement)",
         "2505.02819", True, "no")


def list_methods() -> list[str]:
    return list(REGISTRY)


def _entry(name: str):
    if name not in REGISTRY:
        raise UnknownNameError("method", name, REGISTRY)
    return REGISTRY[name]


def get_class(name: str):
    module, cls = _entry(name)[0].split(":")
    return getattr(importlib.import_module(module), cls)


def create(name: str, params: dict[str, Any] | None = None):
    """Instantiate method `name` with its params dataclass built from `params` (validated); `heal=lora` and
    the `lora_*` parameters set up LoRA healing after any method (methods.lora)."""
    import dataclasses

    from methods.lora import split_params
    from methods.params import build_params

    cls = get_class(name)
    own = {f.name for f in dataclasses.fields(cls.Params)}
    rest, lora = split_params(params or {}, own, name)
    pruner = cls(build_params(cls.Params, rest, method=name))
    pruner.lora = lora
    return pruner


def heals_with_lora(params: dict[str, Any]) -> bool:
    """Whether these method parameters ask for LoRA healing (so the method trains whatever its kind)."""
    heal = params.get("heal")
    return isinstance(heal, str) and heal.strip().lower() == "lora"


def method_rows() -> list[dict[str, Any]]:
    return [{"name": name, "title": title, "paper": f"arXiv:{paper}" if paper else "-",
             "needs calibration": "yes" if calib else "no", "trains": trains}
            for name, (_, title, paper, calib, trains) in REGISTRY.items()]
