"""Report figures (PNG, matplotlib's Agg canvas): layer importance, accuracy vs size, accuracy vs speed.

Byte-stable for the same store and matplotlib: matplotlib's default style (a user's matplotlibrc is
ignored), a fixed size and dpi, no pyplot state, and no "Software" stamp in the PNG metadata.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

from bench.atomic import write_bytes
from bench.report.groups import Group
from bench.report.rows import Row, method_order

log = logging.getLogger(__name__)

SIZE = (6.4, 4.0)
DPI = 100
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
LINESTYLES = ("-", "--", "-.", ":")


@dataclass(frozen=True)
class Figure:
    path: Path       # where the PNG was written
    caption: str


def _style(label: str, labels: list[str]) -> dict:
    """Colour, marker and line style of a method, fixed by its place in the registry (then by name)."""
    i = labels.index(label)
    return {"color": PALETTE[i % len(PALETTE)], "marker": MARKERS[i % len(MARKERS)],
            "linestyle": LINESTYLES[i % len(LINESTYLES)]}


def _labels(rows: list[Row]) -> list[str]:
    order = method_order()
    labels = {r.label: (order.index(r.method) if r.method in order else len(order), r.label) for r in rows}
    return sorted(labels, key=labels.__getitem__)


def _title(ax, group: Group, what: str) -> None:
    text = f"{group.model}: {what}"
    if group.title != group.model:  # the model has several settings: name this one on a second line
        text += "\n" + group.title.removeprefix(group.model).strip(" ()")
    ax.set_title(text, fontsize=10)


def _save(fig, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    write_bytes(path, buf.getvalue())


def _new_figure():
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=SIZE, dpi=DPI, layout="constrained")
    return fig, fig.add_subplot()


def importance(group: Group, path: Path) -> Figure | None:
    """Every scoring method's per-layer importance profile (min-max scaled per method) on one plot."""
    profiles: dict[str, list[float]] = {}
    for row in group.rows:  # table order: the smallest budget and seed of each method first
        if row.per_layer and row.label not in profiles:
            profiles[row.label] = row.per_layer
    if not profiles:
        return None
    labels = _labels([r for r in group.rows if r.label in profiles])
    lines: dict[tuple[float, ...], list[str]] = {}  # methods with the same profile share one line
    for label in labels:
        scores = profiles[label]
        lo, hi = min(scores), max(scores)
        scaled = tuple(round((s - lo) / (hi - lo), 6) if hi > lo else 0.0 for s in scores)
        lines.setdefault(scaled, []).append(label)
    fig, ax = _new_figure()
    for scaled, names in lines.items():
        ax.plot(range(len(scaled)), scaled, label=" = ".join(names), markersize=4, linewidth=1.5,
                **_style(names[0], labels))
    ax.set_xlabel("layer index (dense model)")
    ax.set_ylabel("importance (min-max scaled per method)")
    _title(ax, group, "layer importance")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
    return Figure(path, f"{group.title}: per-layer importance of each scoring method (plan scores `per_layer`, "
                        "scaled to 0-1 per method; higher = more important)")


def _scatter(group: Group, path: Path, x_of, xlabel: str, dense_x: float, title: str, caption: str) -> Figure | None:
    points: dict[str, list[tuple[float, float]]] = {}
    for row in group.rows:
        x = x_of(row)
        if x is not None and row.accuracy is not None:
            points.setdefault(row.label, []).append((x, 100.0 * row.accuracy))
    if not points:
        return None
    labels = _labels([r for r in group.rows if r.label in points])
    fig, ax = _new_figure()
    for label in labels:
        style = _style(label, labels)
        by_x: dict[float, list[float]] = {}
        for x, y in points[label]:
            by_x.setdefault(round(x, 6), []).append(y)
        xs = sorted(by_x)
        ax.plot(xs, [sum(by_x[x]) / len(by_x[x]) for x in xs], label=label, markersize=5, linewidth=1.2, **style)
        spread = [(x, y) for x in xs if len(by_x[x]) > 1 for y in by_x[x]]  # seeds: each point, line at the mean
        if spread:
            ax.scatter(*zip(*spread, strict=True), marker=style["marker"], color=style["color"], s=14, alpha=0.5)
    if group.dense is not None and group.dense.accuracy is not None:
        ax.scatter([dense_x], [100.0 * group.dense.accuracy], marker="*", s=150, color="black", zorder=3,
                   label="dense")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("average accuracy (%)")
    _title(ax, group, title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
    return Figure(path, caption)


def accuracy_vs_ratio(group: Group, path: Path) -> Figure | None:
    return _scatter(group, path, lambda r: None if r.param_ratio is None else 100.0 * r.param_ratio,
                    "parameters removed (%)", 0.0, "accuracy vs parameters removed",
                    f"{group.title}: average accuracy against the share of parameters removed, per method")


def accuracy_vs_speedup(group: Group, path: Path) -> Figure | None:
    return _scatter(group, path, group.speedup, "decode speed-up over dense (×)", 1.0,
                    "accuracy vs decode speed-up",
                    f"{group.title}: average accuracy against decode tokens/s relative to dense")


def render(group: Group, folder: Path) -> list[Figure]:
    """The figures of one group, written to `folder` as <slug>-<kind>.png (skipped when nothing to plot)."""
    import matplotlib.style

    out = []
    with matplotlib.style.context("default"):
        for kind, draw in (("importance", importance), ("accuracy-vs-ratio", accuracy_vs_ratio),
                           ("accuracy-vs-speedup", accuracy_vs_speedup)):
            fig = draw(group, folder / f"{group.slug}-{kind}.png")
            if fig is not None:
                out.append(fig)
    log.debug("%d figures for %s", len(out), group.title)
    return out
