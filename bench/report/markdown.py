"""Number formatting and GitHub-flavoured markdown tables (shared by every report page)."""

from __future__ import annotations

from collections.abc import Sequence

DASH = "–"


def pct(x: float | None, stderr: float | None = None, digits: int = 1) -> str:
    """A fraction as a percentage, with lm-eval's stderr where there is one: `61.2 ± 1.1`."""
    if x is None:
        return DASH
    text = f"{100 * x:.{digits}f}"
    return f"{text} ± {100 * stderr:.{digits}f}" if stderr is not None else text


def num(x: float | None, digits: int = 1, suffix: str = "") -> str:
    return DASH if x is None else f"{x:.{digits}f}{suffix}"


def signed(x: float | None, digits: int = 1) -> str:
    return DASH if x is None else f"{x:+.{digits}f}"


def count(n: int | None) -> str:
    """A parameter count: 134.5 M, 1.54 B, 254.8 K."""
    if n is None:
        return DASH
    for scale, unit, digits in ((1e9, "B", 2), (1e6, "M", 1), (1e3, "K", 1)):
        if abs(n) >= scale:
            return f"{n / scale:.{digits}f} {unit}"
    return str(n)


def ppl(x: float | None) -> str:
    if x is None:
        return DASH
    return f"{x:.2f}" if x < 1000 else f"{x:.0f}"


def cell(text: str) -> str:
    """Text safe inside a table cell (pipes escaped, no line breaks)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] | None = None) -> str:
    """A markdown table; `right[i]` right-aligns column i (numbers)."""
    right = list(right) if right is not None else [i > 0 for i in range(len(header))]
    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "|".join("---:" if r else ":---" for r in right) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def bold_best(values: Sequence[float | None], texts: list[str], higher: bool = True) -> list[str]:
    """Bold the best of `values` (ties all bold); texts of missing values are left as they are."""
    present = [v for v in values if v is not None]
    if len(present) < 2:
        return texts
    best = max(present) if higher else min(present)
    return [f"**{t}**" if v is not None and v == best else t for v, t in zip(values, texts, strict=True)]
