"""A user's text file as documents: a .txt (blank-line separated) or a .jsonl (a "text" field per line).

What calibration, training and the early path checks share; imports no torch. Every way a file can be
unusable (missing, a folder, unreadable, not UTF-8, malformed JSONL, empty) is one ConfigError naming the
option it came from.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.errors import ConfigError

BUILTIN_SOURCES = ("wikipedia", "c4")  # the built-in real-text samples (bench.data.loaders)


def read_text(path: str | Path, what: str, option: str) -> str:
    """A local file's whole text, which must be UTF-8 and not blank."""
    path = Path(path).expanduser()
    hint = f"give {option} a UTF-8 text file"
    if path.is_dir():
        raise ConfigError(f"{what} file {path} is a folder", hint)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} file {path} does not exist", f"check the path given to {option}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file {path}: {exc.strerror}", f"check the path given to {option}") \
            from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} file {path} is not UTF-8 text (undecodable byte at offset {exc.start})", hint) \
            from None
    if not text.strip():
        raise ConfigError(f"{what} file {path} holds no text", f"give {option} a non-empty file")
    return text


def read_documents(path: str | Path, what: str, option: str) -> tuple[str, ...]:
    """The documents of a local text file; `what` names its use ("calibration text"), `option` its flag."""
    path = Path(path).expanduser()
    text = read_text(path, what, option)
    if path.suffix == ".jsonl":
        docs = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                docs.append(row["text"] if isinstance(row["text"], str) else None)
            except (json.JSONDecodeError, KeyError, TypeError):
                docs.append(None)
            if docs[-1] is None:
                raise ConfigError(f"{what} file {path} line {number} is not a JSON object with a \"text\" string",
                                  'write one {"text": "..."} object per line')
    else:
        docs = [d.strip() for d in text.split("\n\n") if d.strip()]
    if not any(d.strip() for d in docs):
        raise ConfigError(f"{what} file {path} holds no text", f"give {option} a non-empty file")
    return tuple(docs)


def source_documents_or_builtin(source: str, what: str, option: str) -> tuple[str, ...] | None:
    """None for a built-in corpus name, else the file's documents (a missing file says which names exist)."""
    if source in BUILTIN_SOURCES:
        return None
    path = Path(source).expanduser()
    if not path.exists():
        raise ConfigError(f"{what} source {source!r} is neither {' nor '.join(BUILTIN_SOURCES)} nor a file",
                          f"give {option} {', '.join(BUILTIN_SOURCES)}, or a path to a .txt or .jsonl file")
    return read_documents(path, what, option)
