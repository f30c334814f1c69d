"""Number formatting and GitHub-flavoured markdown tables (shared by every report page)."""

from __future__ import annotations

import math
from collections.abc import Sequence

DASH = "–"
BELOW_CHANCE = "†"   # marks an accuracy at or below chance


def pct(x: float | None, stderr: float | None = None, digits: int = 1) -> str:
    """A fraction as a percentage, with lm-eval's stderr where there is one: `61.2 ± 1.1`."""
    if x is None:
        return DASH
    text = f"{100 * x:.{digits}f}"
    return f"{text} ± {100 * stderr:.{digits}f}" if stderr is not None else text


def num(x: float | None, digits: int = 1, suffix: str = "") -> str:
    return DASH if x is None else f"{x:.{digits}f}{suffix}"


def signed(x: float | None, digits: int = 1) -> str:
    if x is None:
        return DASH
    x = round(x, digits) + 0.0   # no "−0.0"
    return f"{x:+.{digits}f}".replace("-", "−")


def interval(estimate: float | None, low: float | None, high: float | None, scale: float = 100.0,
             digits: int = 1, sign: bool = False) -> str:
    """`61.3 [54.0, 68.0]` (or `+2.7 [−4.0, +9.3]` with sign): an estimate and its 95 % interval."""
    if estimate is None:
        return DASH
    fmt = signed if sign else (lambda v, d: num(v, d))
    text = fmt(scale * estimate, digits)
    if low is None or high is None:
        return text
    return f"{text} [{fmt(scale * low, digits)}, {fmt(scale * high, digits)}]"


def pvalue(p: float | None) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return DASH
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def count(n: int | None) -> str:
    """A parameter count: 134.5 M, 1.54 B, 254.8 K."""
    if n is None:
        return DASH
    for scale, unit, digits in ((1e9, "B", 2), (1e6, "M", 1), (1e3, "K", 1)):
        if abs(n) >= scale:
            return f"{n / scale:.{digits}f} {unit}"
    return str(n)


def ppl(x: float | None) -> str:
    """Perplexity: two decimals below 1000, else scientific notation (1.10e11 rather than 109857528368)."""
    if x is None:
        return DASH
    if x < 1000:
        return f"{x:.2f}"
    mantissa, exponent = f"{x:.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


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
