"""A user's text file as documents: a .txt (blank-line separated) or a .jsonl (a "text" field per line).

What calibration, training and the early path checks share; imports no torch. Every way a file can be
unusable (missing, a folder, unreadable, not UTF-8, malformed JSONL, empty, a device) is one ConfigError
naming the option it came from.

A pipe (`--calib <(zcat text.gz)`, a named FIFO) can be read only once, and the early checks read it before
the model loads: its bytes are kept for the process (`_PIPES`), so calibration reads what the check read.
It is opened without blocking: a FIFO that nobody writes to is empty at once, not a hang. Devices and
sockets are refused (/dev/zero would never end).
"""

from __future__ import annotations

import json
import os
import select
import stat
from pathlib import Path

from bench.core.errors import ConfigError

BUILTIN_SOURCES = ("wikipedia", "c4")  # the built-in real-text samples (bench.data.loaders)
MAX_PIPE_BYTES = 1 << 30  # a pipe longer than this is refused (a regular file has its size on disk)
PIPE_WAIT_S = 600.0  # how long a pipe with a writer may stay silent before it is given up
_PIPES: dict[str, bytes] = {}  # path as given -> the bytes read from that pipe, this process


def is_text_file(path: str | Path) -> bool:
    """A path text can be read from: a regular file or a pipe (not a folder, a device or a socket)."""
    try:
        mode = os.stat(Path(path).expanduser()).st_mode
    except OSError:
        return str(path) in _PIPES
    return stat.S_ISREG(mode) or stat.S_ISFIFO(mode)


def _read_pipe(path: Path, what: str, option: str) -> bytes:
    """A pipe's bytes, read once (kept in `_PIPES`); opened non-blocking, so a FIFO without a writer is empty
    rather than a hang."""
    key = str(path)
    if key in _PIPES:
        return _PIPES[key]
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    chunks, size = [], 0
    try:
        while True:
            try:
                chunk = os.read(fd, 1 << 20)
            except BlockingIOError:  # a writer that has not written yet
                if not select.select([fd], [], [], PIPE_WAIT_S)[0]:
                    raise ConfigError(f"{what} pipe {path} sent nothing for {PIPE_WAIT_S:.0f} s",
                                      f"give {option} a file, or a pipe whose writer writes") from None
                continue
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_PIPE_BYTES:
                raise ConfigError(f"{what} pipe {path} sends more than {MAX_PIPE_BYTES >> 20} MiB",
                                  f"give {option} a file")
    finally:
        os.close(fd)
    _PIPES[key] = b"".join(chunks)
    return _PIPES[key]


def read_text(path: str | Path, what: str, option: str, allow_empty: bool = False) -> str:
    """A local file's whole text, which must be UTF-8 and (unless `allow_empty`) not blank."""
    path = Path(path).expanduser()
    hint = f"give {option} a UTF-8 text file"
    if path.is_dir():
        raise ConfigError(f"{what} file {path} is a folder", hint)
    try:
        mode = os.stat(path).st_mode if str(path) not in _PIPES else stat.S_IFIFO
        if stat.S_ISFIFO(mode):
            data = _read_pipe(path, what, option)
            if not data.strip():  # even where a blank file is allowed: a pipe nobody wrote to is a mistake
                raise ConfigError(f"{what} pipe {path} holds no text (nothing was written to it)",
                                  f"give {option} a non-empty file, or start the pipe's writer first")
        elif not stat.S_ISREG(mode):
            raise ConfigError(f"{what} file {path} is not a regular file (a device or a socket)", hint)
        else:
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
    if not text.strip() and not allow_empty:
        raise ConfigError(f"{what} file {path} holds no text", f"give {option} a non-empty file")
    return text


class JsonlLineError(ValueError):
    """A JSONL line that is not a JSON object (`number`: its 1-based line number)."""

    def __init__(self, number: int):
        super().__init__(f"line {number} is not a JSON object")
        self.number = number


def jsonl_rows(text: str) -> list[tuple[int, dict]]:
    """The one JSONL parser: each non-blank line's JSON object with its 1-based line number; a line that is
    not a JSON object raises JsonlLineError (the caller says what the file is and what to do)."""
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict):
            raise JsonlLineError(number)
        rows.append((number, row))
    return rows


def read_documents(path: str | Path, what: str, option: str) -> tuple[str, ...]:
    """The documents of a local text file; `what` names its use ("calibration text"), `option` its flag."""
    path = Path(path).expanduser()
    text = read_text(path, what, option)
    if path.suffix == ".jsonl":
        def bad(number: int) -> ConfigError:
            return ConfigError(f"{what} file {path} line {number} is not a JSON object with a \"text\" string",
                               'write one {"text": "..."} object per line')

        try:
            rows = jsonl_rows(text)
        except JsonlLineError as exc:
            raise bad(exc.number) from None
        docs = []
        for number, row in rows:
            if not isinstance(row.get("text"), str):
                raise bad(number)
            docs.append(row["text"])
    else:
        docs = [d.strip() for d in text.split("\n\n") if d.strip()]
    if not any(d.strip() for d in docs):
        raise ConfigError(f"{what} file {path} holds no text", f"give {option} a non-empty file")
    return tuple(docs)


def source_documents_or_builtin(source: str, what: str, option: str,
                                windows: tuple[int, int] | None = None) -> tuple[str, ...] | None:
    """None for a built-in corpus name, else the file's documents (a missing file says which names exist).
    With `windows` (n, tokens each), a file that cannot hold that many tokens is refused now (`enough_text`)."""
    if source in BUILTIN_SOURCES:
        return None
    path = Path(source).expanduser()
    if not path.exists() and source not in _PIPES:
        raise ConfigError(f"{what} source {source!r} is neither {' nor '.join(BUILTIN_SOURCES)} nor a file",
                          f"give {option} {', '.join(BUILTIN_SOURCES)}, or a path to a .txt or .jsonl file")
    docs = read_documents(path, what, option)
    if windows is not None:
        enough_text(docs, *windows, what=f"{what} file {path}", option=option)
    return docs


def enough_text(docs: tuple[str, ...], n: int, seq_len: int, what: str, option: str) -> None:
    """Refuse text that cannot hold `n` windows of `seq_len` tokens, before any tokenizer is loaded: a token
    covers at least one byte, except a word-start marker of some SentencePiece vocabularies, so a text has
    at most 2 tokens per UTF-8 byte plus one separator per document (an upper bound: this never refuses text
    that would be enough)."""
    size = sum(len(d.encode("utf-8")) for d in docs)
    most = 2 * size + len(docs)
    if most < n * (seq_len - 1):
        raise ConfigError(f"{what} holds {size} bytes of text, too little for {n} windows of {seq_len} tokens",
                          "give more text, or fewer samples (--calib-samples) or shorter windows")
