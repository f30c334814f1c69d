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
        needs_calibration = True         # gets a bench.data.calibration.Calibration in `plan`
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
what its source said. A class registered from elsewhere (a test) is listed once it is imported.

Plug-ins, without forking (read the same way, from their source, imported only to prune):
- an installed package's entry point in the group `layerprune_bench.methods` (`name = "module:Class"` or
  `"module"`), e.g. in its pyproject.toml: `[project.entry-points."layerprune_bench.methods"]
  mine = "my_pkg.pruner:MyMethod"`; every process of that environment sees it (Slurm and submitit jobs too);
- a `.py` file in a folder given with `--include-path DIR` (`add_path`; the run spec carries the folder to
  its jobs). `MethodInfo.origin` says where a method came from; records keep it in their provenance.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib
import importlib.util
import logging
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.core.errors import ConfigError, UnknownNameError

log = logging.getLogger(__name__)

ENTRY_POINTS = "layerprune_bench.methods"  # the entry-point group of plug-in methods


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
    origin: str = ""  # "" for the harness's own; else the plug-in it came from (entry point or file)

    @property
    def trains_text(self) -> str:
        return "yes" if self.trains and not self.may_train else "optional" if self.may_train else "no"

    def row(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "paper": f"arXiv:{self.paper}" if self.paper else "-",
                "needs calibration": "yes" if self.needs_calibration else "no", "trains": self.trains_text,
                "from": self.origin or "built in"}


_FIELDS = ("name", "title", "paper", "needs_calibration", "may_train", "trains", "exportable", "order")
_INFO: dict[str, MethodInfo] = {}
_CLASSES: dict[str, type] = {}
_FILES: dict[str, Path] = {}  # module name -> the include-path file it is loaded from
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


def _scan_source(source: str, module: str, origin: str = "", only: str | None = None) -> list[str]:
    """Register the metadata of the `@register` classes of one module's source (`only`: that class)."""
    found = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and any(_is_register(d) for d in node.decorator_list) \
                and (only is None or node.name == only):
            attrs = _literal_attributes(node)
            if "name" in attrs and attrs["name"] not in _INFO:
                attrs.setdefault("title", attrs["name"])
                attrs.setdefault("paper", "")
                _INFO[attrs["name"]] = MethodInfo(path=f"{module}:{node.name}", origin=origin, **attrs)
                found.append(attrs["name"])
    return found


def _scan() -> None:
    """Read the metadata of every `@register` class in this package's modules and in the installed
    plug-ins' entry points (source only)."""
    global _scanned
    if _scanned:
        return
    _scanned = True
    for mod in pkgutil.iter_modules(__path__):
        if mod.name.startswith("_"):
            continue
        source = (Path(__path__[0]) / f"{mod.name}.py").read_text(encoding="utf-8")
        _scan_source(source, f"{__name__}.{mod.name}")
    _scan_entry_points()


def _scan_entry_points() -> None:
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINTS):
        module, _, cls = ep.value.partition(":")
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else "?"
        origin = f"entry point {ep.name} = {ep.value} ({dist})"
        try:
            spec = importlib.util.find_spec(module)
            source = Path(spec.origin).read_text(encoding="utf-8") if spec and spec.origin else None
        except (ImportError, OSError, ValueError) as exc:
            log.warning("plug-in %s cannot be read (%s); skipping it", origin, exc)
            continue
        if source is None or not _scan_source(source, module, origin, cls.strip() or None):
            log.warning("plug-in %s declares no @register class with literal attributes", origin)


def add_path(folder: str | Path) -> list[str]:
    """Register the `@register` classes of every `.py` file in `folder` (an include path); returns the
    method names found. A file is imported only when one of its methods prunes."""
    _scan()
    found = []
    for file in sorted(Path(folder).glob("*.py")):
        if file.name.startswith("_"):
            continue
        digest = hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:8]
        module = f"layerprune_plugin_{file.stem}_{digest}"
        _FILES[module] = file.resolve()
        found += _scan_source(file.read_text(encoding="utf-8"), module, f"include path {file.resolve()}")
    return found


def _import(module: str):
    """A module by name; an include-path file is loaded from its path under its own module name."""
    if module in _FILES and module not in sys.modules:
        spec = importlib.util.spec_from_file_location(module, _FILES[module])
        mod = importlib.util.module_from_spec(spec)
        sys.modules[module] = mod
        try:
            spec.loader.exec_module(mod)
        except BaseException:
            sys.modules.pop(module, None)
            raise
        return mod
    return importlib.import_module(module)


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
    if known is None and not cls.__module__.startswith(f"{__name__}."):  # registered at run time elsewhere
        info = dataclasses.replace(info, origin=f"module {cls.__module__}")
    if known is not None and known.path == info.path:
        info = dataclasses.replace(info, origin=known.origin)
        if known != info:
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
        meta = info(name)
        module, cls = meta.path.split(":")
        try:
            getattr(_import(module), cls)  # importing runs @register
        except ImportError as exc:
            if not meta.origin:
                raise
            raise ConfigError(f"the plug-in method {name} cannot be imported: {exc}",
                              f"check the plug-in ({meta.origin})") from exc
        if name not in _CLASSES:
            raise ConfigError(f"importing {module} did not register method {name}",
                              f"decorate the class with @methods.register ({meta.origin or module})")
    return _CLASSES[name]


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


def plugin_provenance(name: str) -> dict[str, Any] | None:
    """Where a plug-in method came from, for the record (None for the harness's own): its entry point and
    distribution, or its include-path file and that file's sha256."""
    meta = info(name)
    if not meta.origin:
        return None
    module = meta.path.split(":")[0]
    out: dict[str, Any] = {"method": name, "class": meta.path, "origin": meta.origin}
    if module in _FILES:
        out["sha256"] = hashlib.sha256(_FILES[module].read_bytes()).hexdigest()
    return out


# what planning one cell costs on a CPU, by kind (SmolLM2-135M, 2 cores, fp32, the quick preset's sizes);
# a method states its kind with a literal `cpu_cost` class attribute, else it is derived from its flags
CPU_COST = {
    "none": "none: no calibration, no search (under a second)",
    "pass": "one calibration pass (seconds; the capture is shared by the run's methods)",
    "search": "a search of many forward passes (minutes per cell)",
    "train": "training (the quick preset's 32 x 128 tokens: about a minute per cell; grows with train_samples)",
}
_COST = {"laco": "search", "sleb": "search", "ppl": "search", "taylor": "pass", "replaceme": "pass"}


def cpu_cost(name: str) -> str:
    """The CPU-cost class of a method (`CPU_COST`'s key)."""
    meta = info(name)
    cls = _CLASSES.get(name)
    declared = getattr(cls, "cpu_cost", None) if cls is not None else None
    if isinstance(declared, str) and declared in CPU_COST:
        return declared
    if name in _COST:
        return _COST[name]
    return "train" if meta.trains and not meta.may_train else "pass" if meta.needs_calibration else "none"


def _comments(cls: type) -> dict[str, str]:
    """field -> the comment on its line in the class's source (what the parameter means)."""
    import inspect
    import io
    import textwrap
    import tokenize

    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        lines = source.splitlines()
        comments = {t.start[0]: t.string.lstrip("# ").strip()
                    for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type == tokenize.COMMENT}
        for number, line in enumerate(lines, 1):
            stripped = line.strip()
            if ":" in stripped and not stripped.startswith(("def ", "class ", "#", "@", "if ", "return")) \
                    and number in comments:
                out[stripped.split(":")[0].strip()] = comments[number]
    return out


def parameter_rows(name: str) -> list[dict[str, Any]]:
    """A method's parameters: name, type, default and meaning (the comment beside its field), then the LoRA
    healing parameters every method takes (`heal=lora`, `lora_*`)."""
    import typing

    from methods.lora import LoraHeal

    def rows(params_cls: type, group: str) -> list[dict[str, Any]]:
        hints = typing.get_type_hints(params_cls)
        meaning = _comments(params_cls)
        out = []
        for f in dataclasses.fields(params_cls):
            tp = hints.get(f.name, f.type)
            if typing.get_origin(tp) is typing.Literal:
                kind = " | ".join(map(str, typing.get_args(tp)))
            else:
                kind = getattr(tp, "__name__", str(tp)).replace("typing.", "")
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else "required")
            out.append({"parameter": f.name, "type": kind, "default": default,
                        "meaning": meaning.get(f.name, ""), "group": group})
        return out

    own = rows(get_class(name).Params, name)
    heal = [{"parameter": "heal", "type": "none | lora", "default": "none",
             "meaning": "LoRA healing after pruning (merged into the weights; the model stays stock)",
             "group": "any method"}]
    return own + heal + rows(LoraHeal, "any method, with heal=lora")


def method_rows(verbose: bool = False) -> list[dict[str, Any]]:
    if verbose:
        return [{**info(name).row(), "CPU cost": cpu_cost(name),
                 "parameters": ", ".join(f"{r['parameter']}={r['default']}" for r in parameter_rows(name)
                                         if r["group"] == name) or "-"}
                for name in list_methods()]
    return _method_rows()


def _method_rows() -> list[dict[str, Any]]:
    return [info(name).row() for name in list_methods()]
