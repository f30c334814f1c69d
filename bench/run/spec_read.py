"""Plain data (a preset, a YAML file and command-line text, laid over each other by bench.run.spec_layers)
read into a RunSpec by the harness's one converter (bench.core.structured), every name then put in its one
registered spelling (`canonical`).

The rules of a run spec: text is read as numbers and booleans (`--limit 50`), a comma-separated text or a
single value is a list, `none`/`null` clears an optional field, `section: true` takes a section's defaults,
no list is longer than MAX_LIST; models, methods and per-method seeds have readers of their own (names,
`all`, {name, params}). Every mismatch is a ConfigError that names the key, with a suggestion: an unknown
key names the close ones, a malformed number the option that sets it.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from bench.core import structured, values
from bench.core.errors import ConfigError
from bench.run.spec import ALL, MAX_LIST, MethodSpec, ModelSpec, RunSpec, check_count, short_repr, too_many

# ------------------------------------------------------------------------------------ canonical names


def canonical_model(name: str) -> str:
    """A zoo model's registered spelling (`SmolLM2-135M` -> `smollm2-135m`); anything else as given."""
    from bench.models import zoo

    return zoo.canonical_name(name)


def canonical_method(name: str) -> str:
    """A registered method's spelling, whatever the case (`ShortGPT` -> `shortgpt`)."""
    import methods

    known = {n.lower(): n for n in methods.list_methods()}
    return known.get(name.lower(), name)


def canonical_task(name: str) -> str:
    from bench.data import tasks

    known = {n.lower(): n for n in tasks.TASKS}
    return known.get(name.lower(), name)


def canonical_corpus(name: str) -> str:
    """A built-in text's one name (`C4-sample`, `C4` -> `c4`); a path as given."""
    from bench.data import tasks

    for corpus in tasks.CORPORA.values():
        if name.lower() in (corpus.name, corpus.label.lower()):
            return corpus.name
    return name


def canonical(spec: RunSpec) -> RunSpec:
    """The spec with every name in its one registered spelling, before any cell key is built: a model,
    method, task or built-in corpus typed in another case or by its label names the same cells."""
    rep = dataclasses.replace
    if spec.include_path:  # plug-ins first: their names are canonical too; absolute, for jobs elsewhere
        from bench.run import plugins

        spec = rep(spec, include_path=tuple(plugins.load(spec.include_path)))

    def methods_(items):
        return tuple(rep(m, name=canonical_method(m.name)) for m in items)

    ev = spec.eval
    ev = rep(ev, tasks=tuple(dict.fromkeys(canonical_task(t) for t in ev.tasks)))
    if ev.perplexity is not None:
        ev = rep(ev, perplexity=rep(ev.perplexity, corpora=tuple(canonical_corpus(c) for c in ev.perplexity.corpora)))
    if ev.fidelity is not None:
        ev = rep(ev, fidelity=rep(ev.fidelity, corpora=tuple(canonical_corpus(c) for c in ev.fidelity.corpora)))
    return rep(spec, models=tuple(ModelSpec(canonical_model(m.name)) for m in spec.models),
               methods=methods_(spec.methods), method_params=methods_(spec.method_params),
               method_seeds=tuple((canonical_method(n), s) for n, s in spec.method_seeds), eval=ev,
               calib=rep(spec.calib, source=canonical_corpus(spec.calib.source)),
               train=rep(spec.train, source=canonical_corpus(spec.train.source)))


# ------------------------------------------------------------------------------------ reading


def read(data: dict[str, Any]) -> RunSpec:
    """The RunSpec of a plain mapping in the YAML shape of `RunSpec.to_dict()`, in canonical spelling."""
    try:
        spec = structured.build(RunSpec, data, RULES)
    except structured.StructureError as exc:
        raise _error(exc) from None
    return canonical(spec)


def check(data: dict[str, Any]) -> None:
    """Every value one layer gives, checked before the layers above it (which may replace some) complete it."""
    try:
        structured.read_fields(RunSpec, data, RULES)
    except structured.StructureError as exc:
        raise _error(exc) from None


def _names(value: Any, where: str, what: str) -> list[str]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of {what} names, not {short_repr(value)}", f"e.g. {where}: [a, b]")
    check_count(value, where)
    return list(value)


def _models(value: Any, where: str) -> tuple[ModelSpec, ...]:
    return tuple(ModelSpec(n) for n in _names(value, where, "model"))


def _method_seeds(value: Any, where: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """{random: [0, 1, 2, 3, 4]} (or the [[name, seeds], ...] that to_dict writes) -> sorted pairs."""
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        try:
            value = dict(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must map method names to seeds", f"e.g. {where}: {{random: [0, 1]}}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must map method names to seeds", f"e.g. {where}: {{random: [0, 1]}}")
    return tuple(sorted((str(k), structured.read(v, tuple[int, ...], RULES, f"{where}.{k}"))
                        for k, v in value.items()))


def _methods(value: Any, where: str) -> tuple[MethodSpec, ...]:
    """`all`, "a,b", [a, {name: b, params: {...}}] or {a: {...}, b: {}} -> MethodSpecs."""
    if value == ALL or value == [ALL]:
        import methods

        return tuple(MethodSpec(n) for n in methods.list_methods())
    if isinstance(value, dict):
        value = [{"name": k, "params": v or {}} for k, v in value.items()]
    if isinstance(value, str):
        value = _names(value, where, "method")
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{where} must be a list of methods, not {short_repr(value)}", "e.g. methods: [shortgpt, laco]")
    check_count(value, where)
    out = []
    for item in value:
        if isinstance(item, str):
            out.append(MethodSpec(item))
            continue
        if not isinstance(item, dict) or "name" not in item:
            raise ConfigError(f"{where} entry {short_repr(item)} is neither a name nor {{name, params}}",
                              "e.g. - {name: laco, params: {threshold: 0.3}}")
        extra = set(item) - {"name", "params"}
        if extra:
            raise _unknown_key(f"{where}[{item['name']}]", sorted(extra)[0], ["name", "params"])
        params = item.get("params") or {}
        if not isinstance(params, dict):
            raise ConfigError(f"{where}[{item['name']}].params must be a mapping", "e.g. params: {threshold: 0.3}")
        for key, value in params.items():
            if isinstance(value, dict | list | tuple):  # method parameters are single values
                raise ConfigError(f"{where}[{item['name']}].params.{key} must be a single value, not {short_repr(value)}",
                                  "e.g. params: {threshold: 0.3}")
        out.append(MethodSpec(str(item["name"]), tuple(sorted(params.items()))))
    return tuple(out)



RULES = structured.Rules(scalar=structured.lenient, is_none=values.is_none, split_text=True, true_is_defaults=True,
                         max_items=MAX_LIST,
                         readers={(RunSpec, "models"): _models, (RunSpec, "methods"): _methods,
                                  (RunSpec, "method_params"): _methods, (RunSpec, "method_seeds"): _method_seeds})

# ------------------------------------------------------------------------------------ error wording

# the hint for a malformed number, per key that is also a command-line option (else `e.g. <key>: 8`)
EXAMPLES = {"ratios": "e.g. --ratios 0.125,0.25 (in YAML: ratios: [0.125, 0.25])",
            "layers": "e.g. --layers 2,4 (in YAML: layers: [2, 4])",
            "seeds": "e.g. --seed 0,1 (in YAML: seeds: [0, 1])",
            "eval.limit": "e.g. --limit 50 (in YAML: eval: {limit: 50})",
            "calib.n_samples": "e.g. --calib-samples 64 (in YAML: calib: {n_samples: 64})"}


def _unknown_key(where: str, key: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(str(key), known, n=2, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}?" if close else f"known keys here: {', '.join(known)}"
    return ConfigError(f"unknown key {(f'{where}.{key}' if where else str(key))!r}", hint)


def _is_number(value: Any) -> bool:
    try:
        values.to_number(value, float)
        return True
    except (TypeError, ValueError):
        return False


def _error(exc: structured.StructureError) -> ConfigError:
    """The user's message for a spec that does not fit its dataclasses."""
    where, value, tp = exc.where, exc.value, exc.expected
    if exc.problem == "unknown key":
        return _unknown_key(where, exc.key, list(exc.allowed))
    if exc.problem == "too many":
        return too_many(where, len(value))
    if exc.problem == "missing":
        return ConfigError(f"{where or 'the run spec'} is incomplete: missing {', '.join(exc.missing)}",
                           "see `bench run --help`")
    if dataclasses.is_dataclass(tp):
        return ConfigError(f"{where or 'the run spec'} must be a mapping, not {short_repr(value)}", "see `bench run --help`")
    if tp is bool:
        return ConfigError(f"{where} must be true or false, not {short_repr(value)}", f"e.g. {where}: true")
    if tp in (int, float):
        what = "a whole number" if tp is int and _is_number(value) else "a number"
        return ConfigError(f"{where} must be {what}, not {short_repr(value)}",
                           EXAMPLES.get(where, f"e.g. {where}: {0.5 if tp is float else 8}"))
    if tp is str:
        return ConfigError(f"{where} must be a string, not {short_repr(value)}", f"e.g. {where}: auto")
    return ConfigError(f"{where} must be {structured.describe(tp)}, not {short_repr(value)}", "see `bench run --help`")
