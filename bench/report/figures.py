"""Report figures (PNG, matplotlib's Agg canvas): layer importance with the removed layers, accuracy vs the
share of decoder layers removed, accuracy vs speed; intervals as error bars and a chance line.

Byte-stable for the same store and matplotlib: matplotlib's default style (a user's matplotlibrc is
ignored), a fixed size and dpi, no pyplot state, and no "Software" stamp in the PNG metadata.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

from bench.core.atomic import write_bytes
from bench.report.groups import Group
from bench.results.rows import Row, budget_label, method_order

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


def documents(group: Group) -> str:
    """The documents behind a group's accuracy (`piqa 50, arc_easy 50`), for titles and captions."""
    row = group.dense or (group.rows[0] if group.rows else None)
    counts = [f"{t} {s.n}" for t, s in (row.tasks.items() if row is not None else []) if s.n is not None]
    return ", ".join(counts)


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


# how the removed-layers panel draws each kind of change (a colour in, scatter keyword arguments out)
CHANGE_MARKS = {
    "removed": lambda c: {"marker": "s", "color": c},
    "merged": lambda c: {"marker": "x", "color": c},
    "replaced": lambda c: {"marker": "s", "facecolors": "none", "edgecolors": c},
}


def _proxy(kwargs: dict) -> dict:
    """Scatter keyword arguments as a legend handle's (Line2D) keyword arguments."""
    face = kwargs.get("facecolors", kwargs.get("color"))
    edge = kwargs.get("edgecolors", kwargs.get("color"))
    return {"marker": kwargs["marker"], "markerfacecolor": face, "markeredgecolor": edge, "color": edge}


def changed_layers(row: Row) -> dict[str, list[int]]:
    """The dense layers a cell changed, by kind: removed, merged (folded into a kept layer) or replaced (a
    window whose first layer became a trained module), from its plan's operations."""
    pruning = row.record.pruning
    removed = list(pruning.removed_layers or [])
    ops = [op.get("op") for op in (pruning.ops or []) if isinstance(op, dict)]
    if "replace" in ops:
        return {"replaced": removed}
    if "merge" in ops:
        return {"merged": removed}
    return {"removed": removed}


def _rank_scaled(scores: list[float]) -> tuple[float, ...]:
    """Each layer's rank within the method's profile, scaled to 0-1 (ties share their mean rank): a scale
    on which one outlier (layer 0's huge score, say) does not flatten every other layer into one band."""
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2
        i = j + 1
    top = max(len(scores) - 1, 1)
    return tuple(round(r / top, 6) for r in ranks)


def importance(group: Group, path: Path) -> Figure | None:
    """Every scoring method's per-layer importance profile (rank-scaled per method) above a map of the
    layers each cell removed."""
    profiles: dict[str, list[float]] = {}
    for row in group.rows:  # table order: the smallest budget and seed of each method first
        if row.per_layer and row.label not in profiles:
            profiles[row.label] = row.per_layer
    removed = [r for r in group.rows if r.record.pruning is not None and isinstance(r.record.pruning.removed_layers, list)]
    if not profiles and not removed:
        return None
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(SIZE[0], SIZE[1] * 1.6), dpi=DPI, layout="constrained")
    ax, grid = fig.subplots(2, 1, sharex=True, height_ratios=[1.2, 1.0])
    labels = _labels([r for r in group.rows if r.label in profiles or r in removed])
    lines: dict[tuple[float, ...], list[str]] = {}  # methods with the same ranking share one line
    for label in labels:
        if label in profiles:
            lines.setdefault(_rank_scaled(profiles[label]), []).append(label)
    for scaled, names in lines.items():
        ax.plot(range(len(scaled)), scaled, label=" = ".join(names), markersize=4, linewidth=1.5,
                **_style(names[0], labels))
    ax.set_ylabel("importance rank (0 = least)")
    _title(ax, group, "layer importance and removed layers")
    ax.grid(alpha=0.3)
    if lines:
        ax.legend(fontsize=7)
    names = []
    used: set[str] = set()
    for y, row in enumerate(removed):
        color = _style(row.label, labels)["color"]
        for kind, layers in changed_layers(row).items():
            used.add(kind)
            grid.scatter(layers, [y] * len(layers), s=26, **CHANGE_MARKS[kind](color))
        names.append(f"{row.label} {budget_label(row.budget)}")
    if used:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], linestyle="", markersize=6, label=kind, **_proxy(CHANGE_MARKS[kind]("black")))
                   for kind in CHANGE_MARKS if kind in used]
        grid.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    grid.set_yticks(range(len(names)), names, fontsize=7)
    grid.invert_yaxis()
    grid.set_xlabel("layer index (dense model)")
    grid.grid(alpha=0.3)
    n = group.rows[0].n_layers if group.rows and group.rows[0].n_layers else None
    if n:
        grid.set_xlim(-0.5, n - 0.5)
    _save(fig, path)
    return Figure(path, f"{group.title}: per-layer importance of each scoring method (plan scores `per_layer`, as "
                        "ranks scaled to 0-1 per method; higher = more important) and, below, the layers each "
                        "cell changed: removed, merged into a kept layer (LaCo) or replaced by a trained module "
                        "(Streamline)")


def sublayers(group: Group, path: Path) -> Figure | None:
    """Which sublayers each cell dropped, per dense layer: attention alone, MLP alone, or the whole block
    (drawn only when some cell of the group dropped sublayers)."""
    rows = [r for r in group.rows if not r.dense and r.record.pruning is not None
            and (r.units is not None or isinstance(r.record.pruning.removed_layers, list))]
    if not any(r.units is not None for r in rows):
        return None
    fig, ax = _new_figure()
    fig.set_size_inches(SIZE[0], max(SIZE[1], 0.28 * len(rows) + 1.2))
    kinds = (("attn", "^", PALETTE[0], "attention"), ("mlp", "v", PALETTE[1], "MLP"),
             ("blocks", "s", PALETTE[3], "whole block"))
    names, seen = [], set()
    for y, row in enumerate(rows):
        units = row.units or {"attn": [], "mlp": [], "blocks": list(row.record.pruning.removed_layers)}
        for key, marker, color, label in kinds:
            if units[key]:
                ax.scatter(units[key], [y] * len(units[key]), marker=marker, s=26, color=color,
                           label=None if key in seen else label)
                seen.add(key)
        names.append(f"{row.label} {budget_label(row.budget)}")
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("layer index (dense model)")
    ax.grid(alpha=0.3)
    n = rows[0].n_layers if rows[0].n_layers else None
    if n:
        ax.set_xlim(-0.5, n - 0.5)
    ax.legend(fontsize=7, loc="lower right")
    _title(ax, group, "sublayers dropped per cell")
    _save(fig, path)
    return Figure(path, f"{group.title}: the sublayers each cell dropped, per dense layer: attention alone (▲), MLP "
                        "alone (▼), or the whole block (■)")


def _scatter(group: Group, path: Path, x_of, xlabel: str, dense_x: float, title: str, caption: str,
             ev=None, xerr_of=None, log_x: bool = False) -> Figure | None:
    points: dict[str, list[tuple[float, float, Row]]] = {}
    for row in group.rows:
        x = x_of(row)
        if x is not None and row.accuracy is not None:
            points.setdefault(row.label, []).append((x, 100.0 * row.accuracy, row))
    if not points:
        return None
    labels = _labels([r for r in group.rows if r.label in points])
    fig, ax = _new_figure()
    every = [p[0] for pts in points.values() for p in pts] + [dense_x]
    span = (max(every) - min(every)) or 1.0
    for i, label in enumerate(labels):
        style = _style(label, labels)
        pts = sorted(points[label], key=lambda p: (p[0], p[1]))
        # methods at the same x are dodged side by side (their error bars would stack), by a share of
        # the axis (a factor on a log axis); the true x is in the tables
        offset = (i - (len(labels) - 1) / 2) * DODGE

        def shift(x, offset=offset):
            return x * (1 + offset) if log_x else x + offset * span

        xs, ys = [shift(p[0]) for p in pts], [p[1] for p in pts]
        yerr = xerr = None
        if ev is not None and all(p[2].key in ev.avg for p in pts):
            ivs = [ev.avg[p[2].key] for p in pts]
            yerr = [[y - 100 * iv.low for y, iv in zip(ys, ivs)], [100 * iv.high - y for y, iv in zip(ys, ivs)]]
        if xerr_of is not None:
            bounds = [xerr_of(p[2]) for p in pts]
            bounds = [None if b is None else (shift(b[0]), shift(b[1])) for b in bounds]
            if all(b is not None for b in bounds):
                xerr = [[x - b[0] for x, b in zip(xs, bounds)], [b[1] - x for x, b in zip(xs, bounds)]]
        ax.errorbar(xs, ys, yerr=yerr, xerr=xerr, label=label, markersize=5, linewidth=1.0, capsize=3,
                    elinewidth=0.8, **style)
    if group.dense is not None and group.dense.accuracy is not None:
        dense_iv = ev.avg.get(group.dense.key) if ev is not None else None
        y = 100.0 * group.dense.accuracy
        ax.errorbar([dense_x], [y], yerr=None if dense_iv is None else [[y - 100 * dense_iv.low],
                                                                          [100 * dense_iv.high - y]],
                    marker="*", markersize=12, color="black", zorder=3, capsize=3, label="dense", linestyle="")
    if ev is not None and ev.chance_avg is not None:
        ax.axhline(100.0 * ev.chance_avg, color="grey", linestyle=":", linewidth=1.2, label="chance")
    if log_x:   # ratios: a wide interval on one side does not squeeze the others
        _speedup_axis(ax, [p[0] for pts in points.values() for p in pts] + [dense_x])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("average accuracy (%), 95 % CI")
    _title(ax, group, title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)
    return Figure(path, caption)


DODGE = 0.012  # the horizontal step between methods at the same x, as a share of the x range


def _speedup_axis(ax, estimates: list[float]) -> None:
    """A log axis labelled in plain factors (0.5×, 1×, 1.5×, 2×), spanning the estimates with a margin; an
    interval reaching past it is cut at the axis edge (the tables give it whole)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    ax.set_xscale("log")
    low, high = min(estimates) / 1.25, max(estimates) * 1.25
    ax.set_xlim(low, high)
    ticks = [t for t in (0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0) if low <= t <= high]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _layers_pct(row: Row) -> float | None:
    return 100.0 * row.layers_removed / row.n_layers if row.layers_removed is not None and row.n_layers else None


def accuracy_vs_layers(group: Group, path: Path, ev=None) -> Figure | None:
    return _scatter(group, path, _layers_pct, "decoder layers removed (%)", 0.0, "accuracy vs decoder layers removed",
                    f"{group.title}: average accuracy (95 % paired-bootstrap interval; {documents(group)} documents) "
                    "against the share of decoder layers removed, per method, methods at one budget drawn side "
                    "by side; dotted: chance", ev)


def accuracy_vs_speedup(group: Group, path: Path, ev=None) -> Figure | None:
    def bounds(row: Row):
        ci = ev.speedup.get(row.key) if ev is not None else None
        return None if ci is None or ci.low is None else (ci.low, ci.high)

    def x_of(row: Row):
        ci = ev.speedup.get(row.key) if ev is not None else None
        return ci.estimate if ci is not None else group.speedup(row)

    return _scatter(group, path, x_of, "decode speed-up over dense (×), 95 % CI", 1.0, "accuracy vs decode speed-up",
                    f"{group.title}: average accuracy ({documents(group)} documents) against decode tokens/s "
                    "relative to dense, both with 95 % intervals (log scale; an interval past the axis is cut "
                    "there, the tables give it whole); dotted: chance", ev, bounds, log_x=True)


def fidelity_vs_layers(group: Group, path: Path, ev=None) -> Figure | None:
    """KL to dense (nats/token, with its document-bootstrap interval) against the share of decoder layers
    removed, per method: the distance from the dense model's predictions, tokenizer-free of task noise."""
    points: dict[str, list[tuple[float, float, list[float] | None]]] = {}
    corpus, docs = None, None
    for row in group.rows:
        x = _layers_pct(row)
        parts = [f for f in row.record.part("fidelity") or [] if f.kl_to_dense is not None]
        if x is None or not parts:
            continue
        f = parts[0]
        corpus, docs = f.corpus, f.documents
        points.setdefault(row.label, []).append((x, f.kl_to_dense, list(f.kl_to_dense_ci or []) or None))
    if not points:
        return None
    labels = _labels([r for r in group.rows if r.label in points])
    fig, ax = _new_figure()
    span = max(p[0] for pts in points.values() for p in pts) or 1.0
    for i, label in enumerate(labels):
        pts = sorted(points[label])
        offset = (i - (len(labels) - 1) / 2) * DODGE * span
        xs, ys = [p[0] + offset for p in pts], [p[1] for p in pts]
        yerr = None
        if all(p[2] and len(p[2]) == 2 for p in pts):
            yerr = [[y - p[2][0] for y, p in zip(ys, pts)], [p[2][1] - y for y, p in zip(ys, pts)]]
        ax.errorbar(xs, ys, yerr=yerr, label=label, markersize=5, linewidth=1.0, capsize=3, elinewidth=0.8,
                    **_style(label, labels))
    ax.set_yscale("log")
    ax.set_xlabel("decoder layers removed (%)")
    ax.set_ylabel(f"KL to dense on {corpus}, nats/token (log)")
    _title(ax, group, "distance from the dense model vs decoder layers removed")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)
    return Figure(path, f"{group.title}: KL(dense ‖ pruned) per token on {docs} whole held-out {corpus} documents "
                        "against the share of decoder layers removed, per method (95 % bootstrap interval over "
                        "documents where there are 10 or more)")


def render(group: Group, folder: Path, ev=None) -> list[Figure]:
    """The figures of one group, written to `folder` as <slug>-<kind>.png (skipped when nothing to plot)."""
    import matplotlib.style

    out = []
    with matplotlib.style.context("default"):
        for kind, draw in (("importance", importance), ("accuracy-vs-layers", accuracy_vs_layers),
                           ("accuracy-vs-speedup", accuracy_vs_speedup), ("fidelity-vs-layers", fidelity_vs_layers),
                           ("sublayers", sublayers)):
            path = folder / f"{group.slug}-{kind}.png"
            fig = draw(group, path) if draw in (importance, sublayers) else draw(group, path, ev)
            if fig is not None:
                out.append(fig)
    log.debug("%d figures for %s", len(out), group.title)
    return out
