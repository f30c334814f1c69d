"""Paths the user gives, checked before any model loads: an output must be creatable or writable, an input
readable. Every failure is a PathError (one line, a hint, exit 2 in the CLI).

Writability is probed, not guessed from permission bits: root ignores the bits, a read-only mount or a
pseudo filesystem (/proc) does not. The probe makes and removes an empty folder in the nearest folder
that exists, so a check leaves nothing behind. Imports no torch.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from bench.core.errors import PathError

_REASONS = {
    errno.EROFS: "it is on a read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.ENOENT: "nothing can be created there",
}


def os_reason(exc: OSError) -> str:
    """What an OSError means for the user, in a few words."""
    return _REASONS.get(exc.errno, exc.strerror or type(exc).__name__)


def nearest_existing(path: Path) -> Path:
    """`path` itself when it exists, else its closest ancestor that does."""
    path = Path(os.path.abspath(path))
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _probe(folder: Path, option: str, given: str | os.PathLike, kind: str = "folder") -> None:
    try:
        os.rmdir(tempfile.mkdtemp(dir=folder, prefix=".bench-write-check-"))
    except OSError as exc:
        where = "" if Path(folder) == Path(os.path.abspath(given)) else f" (in {folder})"
        raise PathError(f"{option} {given} is not writable{where}: {os_reason(exc)}",
                        f"give {option} a {kind} you can write to") from None


def writable_folder(path: str | os.PathLike, option: str) -> Path:
    """A folder the command will create or write into: it, or the nearest folder above it, is writable."""
    if str(path).strip() == "":
        raise PathError(f"{option} is empty", f"give {option} a folder")
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise PathError(f"{option} {path} is a file, not a folder", f"give {option} a folder (new or existing)")
    anchor = nearest_existing(p)
    if not anchor.is_dir():
        raise PathError(f"{option} {path} lies under the file {anchor}", f"give {option} a folder")
    _probe(anchor, option, path)
    return p


def writable_file(path: str | os.PathLike, option: str) -> Path:
    """A file the command will write (atomically: a temporary file beside it, then a rename)."""
    if str(path).strip() == "":
        raise PathError(f"{option} is empty", f"give {option} a file path")
    p = Path(path).expanduser()
    if p.is_dir():
        raise PathError(f"{option} {path} is a folder, not a file", f"give {option} a file path, e.g. {p}/baseline.json")
    anchor = nearest_existing(p.parent)
    if not anchor.is_dir():
        raise PathError(f"{option} {path} lies under the file {anchor}", f"give {option} a file path")
    _probe(anchor, option, path, "path")
    return p


def readable_file(path: str | os.PathLike, option: str, what: str = "file") -> Path:
    """An input file: it exists, is a file, and opens for reading."""
    p = Path(path).expanduser()
    if str(path).strip() == "" or not p.exists():
        raise PathError(f"{what} {path!s} does not exist" if str(path).strip() else f"{option} is empty",
                        f"check the path given to {option}")
    if p.is_dir():
        raise PathError(f"{what} {path} is a folder, not a file", f"give {option} a file")
    try:
        with open(p, "rb"):
            pass
    except OSError as exc:
        raise PathError(f"cannot read {what} {path}: {os_reason(exc)}", f"check the path given to {option}") from None
    return p


def readable_folder(path: str | os.PathLike, option: str, what: str = "folder") -> Path:
    """An input folder: it exists and can be listed."""
    p = Path(path).expanduser()
    if not p.exists():
        raise PathError(f"{what} {path} does not exist", f"check the path given to {option}")
    if not p.is_dir():
        raise PathError(f"{what} {path} is a file, not a folder", f"give {option} a folder")
    try:
        with os.scandir(p) as entries:
            next(entries, None)
    except OSError as exc:
        raise PathError(f"cannot read {what} {path}: {os_reason(exc)}", f"check the path given to {option}") from None
    return p


@contextlib.contextmanager
def no_empty_leftovers(path: str | os.PathLike):
    """On an error inside the block, remove the folders that did not exist before it and are still empty
    (a write that failed on a full disk must not leave an empty output folder behind)."""
    target = Path(os.path.abspath(Path(path).expanduser()))
    anchor = nearest_existing(target)
    try:
        yield
    except BaseException:
        if anchor != target:  # made in the block: its own empty subfolders go first
            for below, _, _ in sorted(os.walk(target), key=lambda w: -len(w[0])):
                with contextlib.suppress(OSError):
                    os.rmdir(below)
        folder = target
        while folder != anchor and anchor in folder.parents:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
            folder = folder.parent
        raise
