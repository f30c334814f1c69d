"""The layout holds: the import-layer contract (pyproject.toml [tool.importlinter], one layer per package,
function-level imports included), no import cycle anywhere in the checked packages, no module over 400
lines, and no two modules sharing a basename unless each says why in its docstring."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MAX_LINES = 400


def _root_packages() -> list[str]:
    conf = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return list(conf["tool"]["importlinter"]["root_packages"])


def _modules() -> list[Path]:
    return sorted(p for pkg in _root_packages() for p in (REPO / pkg).rglob("*.py"))


def test_the_layer_contract_is_kept():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists():
        pytest.fail("lint-imports is missing: install the test extras (pip install -e '.[test]')")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([exe, "--no-cache"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " 0 broken" in done.stdout


def cycles(imports: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative): each is an import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(imports):
        if root in index:
            continue
        work = [(root, iter(sorted(imports[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(imports.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycles_finds_a_cycle_and_only_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_no_import_cycles():
    grimp = pytest.importorskip("grimp")
    sys.path.insert(0, str(REPO))
    try:
        graph = grimp.build_graph(*_root_packages(), cache_dir=None)
    finally:
        sys.path.remove(str(REPO))
    mods = set(graph.modules)
    imports = {m: set(graph.find_modules_directly_imported_by(m)) & mods for m in mods}
    assert cycles(imports) == []


def test_no_module_over_the_size_limit():
    long = {str(p.relative_to(REPO)): n for p in _modules()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}, f"modules over {MAX_LINES} lines: split them"


def _explains(path: Path, others: list[str]) -> bool:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return "shares its name with" in doc.lower() and all(o in doc for o in others)


def test_shared_basenames_say_why():
    """Modules named alike: one of them says in its docstring that it shares its name with each of the others,
    and why (a CLI subcommand module is named after its command, say), so a reader can tell them apart."""
    by_name: dict[str, list[Path]] = defaultdict(list)
    for path in _modules():
        if path.name not in ("__init__.py", "__main__.py"):
            by_name[path.stem].append(path)
    unexplained = []
    for paths in (ps for ps in by_name.values() if len(ps) > 1):
        dotted = {p: ".".join(p.relative_to(REPO).with_suffix("").parts) for p in paths}

        if not any(_explains(p, [dotted[o] for o in paths if o != p]) for p in paths):
            unexplained.append(" and ".join(sorted(dotted.values())))
    assert unexplained == [], "say why in a docstring: 'shares its name with <module>: <reason>'"
