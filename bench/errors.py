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


class UnknownNameError(BenchError):
    """A model, method, task or parameter name that is not registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"known {kind}s: {', '.join(known)}"
        super().__init__(f"unknown {kind} {name!r}", hint)
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


class TrainingError(BenchError):
    """Training that diverged (NaN or inf loss)."""
