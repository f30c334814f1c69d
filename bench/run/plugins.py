"""Plug-ins without forking: methods from installed packages (the entry-point group
`layerprune_bench.methods`, see `methods`) and from include-path folders, tasks from lm-eval task folders.

`--include-path DIR` (a RunSpec field, so Slurm and submitit jobs get it with their spec) names folders
holding `.py` files with `@methods.register` pruners (`methods.add_path`) and lm-eval task YAMLs
(`bench.data.tasks.add_path`). `load` registers them in this process; `provenance` says, for a cell's
record, which plug-in method and which include-path tasks it used (entry point and distribution, or the
files with their sha256)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from bench.core.errors import ConfigError

_LOADED: dict[str, tuple[list[str], list[str]]] = {}


def load(paths) -> dict[str, tuple[list[str], list[str]]]:
    """Register the methods and tasks of each include-path folder (once per folder per process); returns
    folder -> (method names, task names)."""
    import methods
    from bench.data import tasks

    out = {}
    for raw in paths or ():
        folder = Path(raw).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"include path {raw} is not a folder", "give --include-path a folder of plug-ins "
                              "(.py files with @methods.register pruners, lm-eval task YAMLs)")
        key = str(folder.resolve())
        if key not in _LOADED:
            _LOADED[key] = (methods.add_path(folder), tasks.add_path(key))
        out[key] = _LOADED[key]
    return out


def provenance(method: str | None, task_names) -> dict[str, Any] | None:
    """What a record keeps about the plug-ins a cell used: its method's (if a plug-in) and every
    include-path task's YAML with its sha256; None when it used none."""
    import methods
    from bench.data import tasks

    out: dict[str, Any] = {}
    if method and method != "dense":
        plugin = methods.plugin_provenance(method)
        if plugin:
            out["method"] = plugin
    used = [tasks.TASKS[t] for t in task_names or () if t in tasks.TASKS and tasks.TASKS[t].include]
    if used:
        out["tasks"] = {t.name: {"include_path": t.include, "yaml": t.yaml,
                                 "sha256": hashlib.sha256(Path(t.yaml).read_bytes()).hexdigest()} for t in used}
    return out or None
