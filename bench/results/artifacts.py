"""A result store's cell files as the store wrote them: reading one (JSON, or JSONL through the one parser,
bench.core.textfile.jsonl_rows), the size and sha256 a record lists for each, and whether they still match.

A file that does not parse, or that no longer matches its record, is a DamagedArtifact, said in one line
(which file, which line), never a JSONDecodeError.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.core.download import sha256_file
from bench.core.errors import BenchError
from bench.core.textfile import JsonlLineError, jsonl_rows

RECORD = "record.json"


class DamagedArtifact(BenchError, ValueError):
    """A cell's file that cannot be read as what the store wrote (truncated, garbled, hand-edited)."""


def read_artifact(path: Path, hint: str) -> Any:
    """A cell's JSON or JSONL file (a list of objects), None when absent; `hint` says how to recover."""
    if not path.exists():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DamagedArtifact(f"{path} is damaged: it is not UTF-8 text", hint) from None
    if path.name.endswith(".jsonl"):
        try:
            return [row for _, row in jsonl_rows(text)]
        except JsonlLineError as exc:
            raise DamagedArtifact(f"{path} is damaged: {exc}", hint) from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise DamagedArtifact(f"{path} is damaged: not valid JSON ({exc})", hint) from None


def digests(folder: Path, names) -> dict[str, dict[str, Any]]:
    """What a record lists for its cell's files (`artifacts`): each file's size and sha256."""
    return {name: {"size": (folder / name).stat().st_size, "sha256": sha256_file(folder / name)}
            for name in sorted(names)}


def damage(folder: Path, record: dict[str, Any], thorough: bool, hint: str) -> str | None:
    """Why the cell's files are not the ones its record was written with, or None. The record lists each
    file's size and sha256 (`artifacts`, `digests`): sizes are always compared, contents with `thorough`.
    A record written before that lists only names (`files`): they must exist and, with `thorough`, parse."""
    listed = record.get("artifacts")
    if isinstance(listed, dict):
        for name, want in sorted(listed.items()):
            path = folder / name
            try:
                size = path.stat().st_size
            except OSError:
                return f"{name} is missing"
            if isinstance(want, dict) and size != want.get("size"):
                return f"{name} has {size} bytes, not the {want.get('size')} it was written with"
            if thorough and isinstance(want, dict) and sha256_file(path) != want.get("sha256"):
                return f"{name} changed since it was written (its sha256 differs)"
        return None
    for name in record.get("files") or []:
        if name == RECORD or not isinstance(name, str):
            continue
        if not (folder / name).is_file():
            return f"{name} is missing"
        if thorough:
            try:
                read_artifact(folder / name, hint)
            except DamagedArtifact as exc:
                return exc.message
    return None
