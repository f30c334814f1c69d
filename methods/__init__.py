"""The method registry: every `Pruner` class decorated with `@register`, declared once, in its own file.

How to add a method (one file, nothing else to edit): create `methods/<name>.py` with

    from dataclasses import dataclass
    from methods import register
    from methods.base import Budget, Pruner

    @register
    class MyMethod(Pruner):
        name = "mine"                    # what --methods and the records call it
        title = "My method (what it scores)"
        paper = "2401.00000"             # arXiv id, or "" for a baseline without a paper
        needs_calibration = True         # gets a bench.calib.Calibration in `plan`
        may_train = False                # some parameters make it train (override `trains` per instance)
        exportable = True                # its pruned model saves as a stock transformers checkpoint
        order = 100                      # place in `bench ls methods` and the report tables

        @dataclass(frozen=True)
        class Params(Pruner.Params):     # its parameters (typed, validated from --param name=value)
            ...

        def plan(self, model, calib, budget: Budget): ...

Listing (`bench ls methods`, the report's method titles and order, a cell's key) must not import torch, so
the registry reads those class attributes from the files' source (`ast`, literal values only) without
importing them; importing a module (to create a pruner) runs `@register`, which checks that the class says
what its source said. A class registered from elsewhere (a plugin, a test) is listed once it is imported.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import UnknownNameError

_HELPERS = {"base", "params", "surgery", "windows"}  # modules of the package that hold no method


@dataclass(frozen=True)
class MethodInfo:
    """What a method declares about itself (its class attributes), read without importing torch."""

    name: str
    path: str  # "module:Class"
    title: str
    paper: str
    needs_calibration: bool = True
    may_train: bool = False
    trains: bool = False  # trains with its default parameters
    exportable: bool = True
    order: int = 100

    @property
    def trains_text(self) -> str:
        return "yes" if self.trains and not self.may_train else "optional" if self.may_train else "no"

    def row(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "paper": f"arXiv:{self.paper}" if self.paper else "-",
                "needs calibration": "yes" if self.needs_calibration else "no", "trains": self.trains_text}


_FIELDS = ("name", "title", "paper", "needs_calibration", "may_train", "trains", "exportable", "order")
_INFO: dict[str, MethodInfo] = {}
_CLASSES: dict[str, type] = {}
_scanned = False


def _literal_attributes(node: ast.ClassDef) -> dict[str, Any]:
    out = {}
    for stmt in node.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            target, value = stmt.targets[0].id, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            target, value = stmt.target.id, stmt.value
        else:
            continue
        if target in _FIELDS:
            try:
                out[target] = ast.literal_eval(value)
            except ValueError:
                pass  # not a literal: read from the class when it is imported
    return out


def _is_register(dec: ast.expr) -> bool:
    return (isinstance(dec, ast.Name) and dec.id == "register") or \
        (isinstance(dec, ast.Attribute) and dec.attr == "register")


def _scan() -> None:
    """Read the metadata of every `@register` class in this package's modules (source only)."""
    global _scanned
    if _scanned:
        return
    _scanned = True
    for mod in pkgutil.iter_modules(__path__):
        if mod.name in _HELPERS or mod.name.startswith("_"):
            continue
        source = (Path(__path__[0]) / f"{mod.name}.py").read_text(encoding="utf-8")
        for node in ast.parse(source).body:
            if isinstance(node, ast.ClassDef) and any(_is_register(d) for d in node.decorator_list):
                attrs = _literal_attributes(node)
                if "name" in attrs and attrs["name"] not in _INFO:
                    attrs.setdefault("title", attrs["name"])
                    attrs.setdefault("paper", "")
                    _INFO[attrs["name"]] = MethodInfo(path=f"{__name__}.{mod.name}:{node.name}", **attrs)


def _info_of(cls: type) -> MethodInfo:
    def flag(name: str, default: bool) -> bool:  # a property (decided per instance) lists as the default
        value = getattr(cls, name, default)
        return value if isinstance(value, bool) else default

    return MethodInfo(name=cls.name, path=f"{cls.__module__}:{cls.__qualname__}", title=cls.title, paper=cls.paper,
                      needs_calibration=flag("needs_calibration", True), may_train=flag("may_train", False),
                      trains=flag("trains", False), exportable=flag("exportable", True), order=int(cls.order))


def register(cls: type) -> type:
    """Class decorator: register a `Pruner` subclass under its `name`, from its own attributes."""
    _scan()
    info = _info_of(cls)
    known = _INFO.get(info.name)
    if info.name in _CLASSES and _CLASSES[info.name] is not cls:
        raise ValueError(f"method {info.name!r} is registered twice ({_CLASSES[info.name].__qualname__}, "
                         f"{cls.__qualname__})")
    if known is not None and known.path == info.path and known != info:
        raise ValueError(f"method {info.name!r}: its class attributes must be literals (read from the source: "
                         f"{known}, from the class: {info})")
    _INFO[info.name] = info
    _CLASSES[info.name] = cls
    return cls


def unregister(name: str) -> None:
    """Forget a method registered at run time (tests that declare toys clean up with it)."""
    _INFO.pop(name, None)
    _CLASSES.pop(name, None)


def list_methods() -> list[str]:
    """Every registered method, in declared order (then by name)."""
    _scan()
    return [i.name for i in sorted(_INFO.values(), key=lambda i: (i.order, i.name))]


def info(name: str) -> MethodInfo:
    _scan()
    if name not in _INFO:
        raise UnknownNameError("method", name, list_methods())
    return _INFO[name]


def get_class(name: str):
    if name not in _CLASSES:
        module, cls = info(name).path.split(":")
        getattr(importlib.import_module(module), cls)  # importing runs @register
    return _CLASSES[name]


def create(name: str, params: dict[str, Any] | None = None):
    """Instantiate method `name` with its params dataclass built from `params` (validated)."""
    from methods.params import build_params

    cls = get_class(name)
    return cls(build_params(cls.Params, params or {}, method=name))


def method_rows() -> list[dict[str, Any]]:
    return [info(name).row() for name in list_methods()]
