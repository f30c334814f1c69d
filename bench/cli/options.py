"""`bench run`'s options, read off the run spec: each option is declared once, on its field in
bench/run/spec.py (`spec.option(...)`: flag, help, group); this module builds the argparse flags from the
fields (`add_cli_options`) and turns the given ones back into the command-line layer of
`config.resolve` (`cli_overrides`, then `--param` with `apply_params`)."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any

from bench.core.errors import ConfigError
from bench.run.config import MethodSpec, RunSpec, resolve


@dataclass(frozen=True)
class CliOption:
    """A `bench run` option, read off the spec field that states it (see `option`)."""

    flag: str
    path: tuple[str, ...]  # where its value goes in the spec mapping
    help: str
    group: str
    exclusive: str | None
    choices: tuple[str, ...] | None
    kind: type  # bool: a switch; int: a number; str: text parsed by the spec (lists, none)
    none_clears_section: bool

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")


def cli_options(cls: type = None, path: tuple[str, ...] = ()) -> list[CliOption]:
    """Every spec field that has a `bench run` flag, in declaration order (nested sections included)."""
    cls = cls or RunSpec
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        union = typing.get_origin(tp) in (typing.Union, types.UnionType)
        inner = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)] if union else []
        if dataclasses.is_dataclass(tp) or inner:
            out += cli_options(tp if dataclasses.is_dataclass(tp) else inner[0], (*path, f.name))
        elif f.metadata.get("flag"):
            m = f.metadata
            kind = bool if tp is bool else int if tp is int else str
            out.append(CliOption(m["flag"], (*path, f.name), m["help"], m["group"], m["exclusive"], m["choices"],
                                 kind, m["none_clears_section"]))
    return out


# the other spelling of a concept that `bench run` and `bench prune` both accept (one flag per concept,
# either number): `bench prune --ratio` / `bench run --ratios`, `--model(s)`, `--method(s)`, `--seed(s)`
ALIASES = {"--ratios": ("--ratio",), "--models": ("--model",), "--methods": ("--method",), "--seed": ("--seeds",)}


def add_cli_options(parser, groups: dict[str, Any]) -> None:
    """The spec's options as argparse flags (unset ones stay None, so only given ones override).
    `groups`: argument group name -> an argparse group (or parser) to add its options to."""
    exclusive: dict[str, Any] = {}
    for opt in cli_options():
        target = groups.get(opt.group, parser)
        if opt.exclusive:
            if opt.exclusive not in exclusive:
                exclusive[opt.exclusive] = target.add_mutually_exclusive_group()
            target = exclusive[opt.exclusive]
        kwargs: dict[str, Any] = {"dest": opt.dest, "help": opt.help}
        if opt.kind is bool:
            kwargs["action"] = "store_true"
            kwargs["default"] = None
        else:
            kwargs["type"] = int if opt.kind is int else str
            if opt.choices:
                kwargs["choices"] = list(opt.choices)
        target.add_argument(opt.flag, **kwargs)
        for alias in ALIASES.get(opt.flag, ()):  # accepted, not listed (help and messages name one flag)
            target.add_argument(alias, **{**kwargs, "help": argparse.SUPPRESS})


def cli_overrides(args) -> dict[str, Any]:
    """The options the user actually gave (argparse defaults are None), as a nested spec mapping."""
    out: dict[str, Any] = {}
    for opt in cli_options():
        value = getattr(args, opt.dest, None)
        if value is None or value is False:
            continue
        if opt.none_clears_section and str(value).strip().lower() in ("none", ""):
            node = out
            for part in opt.path[:-2]:
                node = node.setdefault(part, {})
            node[opt.path[-2]] = None
            continue
        node = out
        for part in opt.path[:-1]:
            node = node.setdefault(part, {})
        node[opt.path[-1]] = value
    return out


def apply_params(spec: RunSpec, items: list[str] | None) -> RunSpec:
    """`--param method.name=value` (or `name=value` when the run has one method) onto the spec's methods."""
    if not items:
        return spec
    from methods.params import parse_param_args

    by_method: dict[str, dict[str, Any]] = {}
    names = [m.name for m in spec.methods]
    for dotted, value in parse_param_args(items).items():
        method, dot, name = dotted.rpartition(".")
        if not dot:
            if len(set(names)) != 1:
                raise ConfigError(f"--param {dotted}={value} does not say which method it is for",
                                  f"write --param METHOD.{dotted}={value}")
            method = names[0]
        if method not in names:
            raise ConfigError(f"--param {dotted}={value} is for method {method!r}, which is not in this run",
                              f"methods in this run: {', '.join(names)}")
        by_method.setdefault(method, {})[name] = value
    methods = tuple(
        MethodSpec(m.name, tuple(sorted({**m.params_dict(), **by_method.get(m.name, {})}.items())))
        for m in spec.methods)
    return dataclasses.replace(spec, methods=methods)


# what `--skip` / `--only` turn off, per evaluation (the evaluators' names, bench.metrics)
EVALUATIONS = {
    "accuracy": lambda e: dataclasses.replace(e, tasks=(), stability=False),  # stability reads its samples
    "stability": lambda e: dataclasses.replace(e, stability=False),
    "perplexity": lambda e: dataclasses.replace(e, perplexity=None),
    "fidelity": lambda e: dataclasses.replace(e, fidelity=None),
    "latency": lambda e: dataclasses.replace(e, latency=None),
}


def _kinds(text: str, flag: str) -> list[str]:
    from bench.core.errors import UnknownNameError

    kinds = [k.strip().lower() for k in str(text).split(",") if k.strip()]
    for kind in kinds:
        if kind not in EVALUATIONS:
            raise UnknownNameError(f"evaluation in {flag}", kind, EVALUATIONS)
    return kinds


def apply_skip(spec: RunSpec, skip: str | None, only: str | None) -> RunSpec:
    """`--skip latency,fidelity` turns those evaluations off; `--only accuracy` every other one."""
    if not skip and not only:
        return spec
    off = _kinds(skip, "--skip") if skip else [k for k in EVALUATIONS if k not in _kinds(only, "--only")]
    ev = spec.eval
    for kind in off:
        ev = EVALUATIONS[kind](ev)
    return dataclasses.replace(spec, eval=ev)


def apply_limit(spec: RunSpec, limit: int | None) -> RunSpec:
    """`--limit N` on the command line bounds the whole cell, not only accuracy: N documents per task, and at
    most N perplexity windows and N fidelity documents (each no more than the preset or YAML asks for);
    latency keeps its probe (a few seconds)."""
    if limit is None:
        return spec
    ev = spec.eval
    if ev.perplexity is not None:
        cap = limit if ev.perplexity.max_windows is None else min(limit, ev.perplexity.max_windows)
        ev = dataclasses.replace(ev, perplexity=dataclasses.replace(ev.perplexity, max_windows=cap))
    if ev.fidelity is not None:
        cap = limit if ev.fidelity.max_documents is None else min(limit, ev.fidelity.max_documents)
        ev = dataclasses.replace(ev, fidelity=dataclasses.replace(ev.fidelity, max_documents=cap))
    return dataclasses.replace(spec, eval=ev)


def from_cli(args) -> RunSpec:
    """The RunSpec for `bench run` options: preset <- --config YAML <- options."""
    spec = resolve(cli_overrides(args), getattr(args, "config", None))
    limit = getattr(args, "limit", None)
    if limit is not None and str(limit).strip().lower() not in ("none", ""):
        spec = apply_limit(spec, spec.eval.limit)
    spec = apply_skip(spec, getattr(args, "skip", None), getattr(args, "only", None))
    return apply_params(spec, getattr(args, "param", None))
