"""The layers a run spec is built from: a preset, a YAML file and command-line options, in that order.

Every layer is a plain mapping with the shape of `RunSpec.to_dict()`; `merge` lays one over another
(nested sections merge key by key; a list replaces a list; `ratios`/`layers` replace the budget as a
whole), and `resolve` reads the result into a RunSpec (bench.run.spec_read). A YAML file is read with a
key written twice, an alias bomb and a non-mapping refused (`load_yaml`). This module imports no torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.core.errors import ConfigError
from bench.run import presets, spec_read
from bench.run.spec import MAX_YAML_VALUES, RunSpec, short_repr


def _unique_key_loader():
    """PyYAML's safe loader, except that a key written twice in one mapping is an error (PyYAML keeps the
    last one silently, so `limit: 5` above `limit: 500` would be ignored without a word)."""
    import yaml

    class UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # the C parser where there is one
        def construct_mapping(self, node, deep=False):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    first = seen.setdefault(key, key_node.start_mark)
                except TypeError:  # an unhashable key: PyYAML's own error follows
                    continue
                if first is not key_node.start_mark:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {short_repr(key)} is written twice (first at line {first.line + 1})",
                        key_node.start_mark)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def _expanded_size(data: Any, limit: int) -> int:
    """How many values `data` holds when every alias counts each time it is used, counted up to `limit`
    (a YAML alias bomb is a few lines that expand to billions of values)."""
    count, stack = 0, [data]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return count


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML run file as a mapping; unreadable, binary or malformed YAML, a key written twice, a file that
    expands to more than MAX_YAML_VALUES values, or a non-mapping is a ConfigError."""
    import yaml

    from bench.core.textfile import read_text

    path = Path(path).expanduser()
    if not path.exists() or path.is_dir():
        why = "it is a folder" if path.is_dir() else "it does not exist"
        raise ConfigError(f"cannot read config file {path}: {why}", "check the --config path")
    text = read_text(path, "config", "--config", allow_empty=True)
    try:
        data = yaml.load(text, Loader=_unique_key_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "malformed YAML"
        hint = "write each key once" if "written twice" in problem else "check the indentation and colons"
        raise ConfigError(f"{path} is not valid YAML{where}: {problem}", hint) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of run options, not a {type(data).__name__}",
                          "e.g. models: [smollm2-135m]")
    if _expanded_size(data, MAX_YAML_VALUES) > MAX_YAML_VALUES:
        raise ConfigError(f"{path} expands to more than {MAX_YAML_VALUES:,} values (aliases counted each time "
                          "they are used)", "write the run file out without nested aliases")
    return data


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` laid on `base`: nested mappings merge, everything else replaces; a budget replaces a budget."""
    out = dict(base)
    if "ratios" in over or "layers" in over:
        out.pop("ratios", None)
        out.pop("layers", None)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in ("params", "methods"):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out



def resolve(cli: dict[str, Any] | None = None, yaml_path: str | Path | None = None) -> RunSpec:
    """Preset <- YAML file <- command-line overrides, then typed and validated."""
    cli = dict(cli or {})
    from_file = load_yaml(yaml_path) if yaml_path else {}
    spec_read.check(from_file)  # every value the file gives is checked, even one an option replaces
    name = cli.get("preset") or from_file.get("preset") or presets.DEFAULT
    layered = merge(merge(presets.get(name), from_file), cli)
    layered["preset"] = name
    return spec_read.read(layered)


def from_yaml(path: str | Path) -> RunSpec:
    """A RunSpec from a YAML file over its preset (the file's `preset`, else quick)."""
    return resolve({}, path)
