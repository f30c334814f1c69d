"""Errors a user can cause: one sentence, one hint, exit code 2 in the CLI (no traceback)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class BenchError(Exception):
    """An error caused by the user's input or environment, reported without a traceback."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


def plural(noun: str) -> str:
    """English plural of a registry's kind: method -> methods, perplexity corpus -> perplexity corpora."""
    if noun.endswith("corpus"):
        return noun[: -len("corpus")] + "corpora"
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    return noun + "s"


class UnknownNameError(BenchError):
    """A model, method, task or parameter name that is not registered (`owner`: whose parameter it is)."""

    def __init__(self, kind: str, name: str, known: Iterable[str], owner: str | None = None):
        known = sorted(known)
        lowered = {k.lower(): k for k in known}  # case-insensitive: `PIQA` suggests piqa
        close = [lowered[c] for c in difflib.get_close_matches(str(name).lower(), list(lowered), n=3, cutoff=0.5)]
        of = f" of {owner}" if owner else ""
        if close:
            hint = f"did you mean {', '.join(close)}?"
        elif known:
            hint = f"known {plural(kind)}{of}: {', '.join(known)}"
        else:
            hint = f"{owner} takes no {plural(kind)}" if owner else f"there are no {plural(kind)}"
        super().__init__(f"unknown {kind}{of} {name!r}", hint)
        self.name = name


class ConfigError(BenchError):
    """A malformed spec: bad YAML, an unknown key, a value of the wrong type or range."""


class BudgetError(BenchError):
    """A pruning budget the model cannot satisfy."""


class SurgeryError(BenchError):
    """A layer operation that cannot be applied (out-of-range, duplicate or all-layer removals)."""


class DownloadError(BenchError):
    """A registry that cannot be reached, or a file whose hash does not match its pin."""


class ExportError(BenchError):
    """A pruned model that has no faithful stock-transformers form."""


class PathError(BenchError):
    """A path the user gave that cannot be read or written (checked before any model loads)."""


class TrainingError(BenchError):
    """Training that diverged (NaN or inf loss)."""
