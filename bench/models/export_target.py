"""May `bench prune --out` write there? Decided before any model loads, and again just before the rename.

    new folder (or an empty one)                        yes
    the harness's own previous export, unchanged        yes: replaced (its marker lists every file it
                                                        wrote, with size and sha256, and nothing else is there)
    that export with files edited since                 only with --force
    a folder holding any file the harness did not write never, even with --force
    a file, a symbolic link                             never
    /, the home folder, the current folder or one       never
    above it, the model being pruned

Imports no torch.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from bench.core.errors import ExportError
from bench.core.pathcheck import writable_folder

MARKER = ".layerprune-bench-export.json"  # written last into every export
_NEW = "give --out a new folder, e.g. --out pruned-model"


def file_digest(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


def _protected(resolved: Path, protect: tuple[str | os.PathLike, ...]) -> str | None:
    """Why `resolved` must never be replaced, or None."""
    cwd, home = Path.cwd().resolve(), Path.home().resolve()
    if resolved == Path(resolved.anchor):
        return "the root folder"
    if resolved == home:
        return "your home folder"
    if resolved == cwd:
        return "the current folder"
    if resolved in cwd.parents:
        return "a folder above the current one"
    if resolved in home.parents:
        return "a folder above your home folder"
    for other in protect:
        if Path(other).expanduser().exists() and resolved == Path(other).expanduser().resolve():
            return "the model being pruned"
    return None


def _listing(folder: Path) -> list[str]:
    """Every file and folder under `folder`, relative, folders with a trailing slash."""
    out = []
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink() or not path.is_dir():
            out.append(rel)
        elif not any(path.iterdir()):
            out.append(rel + "/")
    return out


def _few(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def check_target(out: str | os.PathLike, force: bool = False, protect: tuple[str | os.PathLike, ...] = ()) -> Path:
    """The absolute --out folder when the export may be written there; else an ExportError (exit 2)."""
    if str(out).strip() == "":
        raise ExportError("--out is empty", _NEW)
    given = Path(out).expanduser()
    if given.is_symlink():
        raise ExportError(f"--out {out} is a symbolic link, which is never replaced", "give --out a real folder")
    resolved = Path(os.path.abspath(given)).resolve()
    why = _protected(resolved, protect)
    if why:
        raise ExportError(f"--out {out} is {why}, which is never replaced, not even with --force", _NEW)
    if not given.exists():
        writable_folder(given, "--out")
        return resolved
    if not given.is_dir():
        raise ExportError(f"--out {out} is a file, not a folder", _NEW)
    present = _listing(given)
    if present:
        _check_previous_export(given, out, present, force)
    writable_folder(resolved.parent, "--out's parent folder")  # the new export is built beside it
    return resolved


def _check_previous_export(folder: Path, out, present: list[str], force: bool) -> None:
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        files = marker["files"]
        assert marker.get("written_by") == "layerprune-bench" and isinstance(files, dict)
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        raise ExportError(f"--out {out} holds files the harness did not write ({_few(present)}); nothing of it is "
                          "replaced, not even with --force", _NEW + ", or empty this one yourself") from None
    unknown = [name for name in present if name != MARKER and name not in files]
    if unknown:
        raise ExportError(f"--out {out} holds files its previous export did not write ({_few(unknown)}); nothing of "
                          "it is replaced, not even with --force", _NEW + ", or move those files away")
    changed = [name for name in present if name in files and file_digest(folder / name) != files[name]]
    if changed and not force:
        raise ExportError(f"--out {out} is a previous export whose files changed since it was written "
                          f"({_few(changed)})", "pass --force to replace it, or give --out a new folder")
