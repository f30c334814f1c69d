"""reports/leaderboard.md: per model the dense row, then every method and budget with all its measures,
a summary of accuracy retained per removed parameter, the figures, and the failed cells."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.metrics import Column, metrics
from bench.record import CellError
from bench.report import markdown as md
from bench.report.figures import Figure
from bench.report.groups import Collection, Group, settings_text
from bench.report.rows import Row, budget_label, method_title


@dataclass(frozen=True)
class Efficiency:
    """One method's accuracy lost per removed parameter on one group, averaged over its budgets."""

    label: str
    loss_per_10pct: float   # accuracy points lost per 10 % of parameters removed
    removed_pct: float      # mean share of parameters removed
    retained: float | None  # mean retained performance (% of dense)
    n: int                  # rows averaged


def efficiency(group: Group) -> list[Efficiency]:
    """Per method, best first: the mean accuracy points lost per 10 % of parameters removed."""
    by_label: dict[str, list[Row]] = {}
    for row in group.rows:
        if group.loss_per_10pct(row) is not None:
            by_label.setdefault(row.label, []).append(row)
    out = []
    for label, rows in by_label.items():
        losses = [group.loss_per_10pct(r) for r in rows]
        rps = [group.retained(r) for r in rows]
        out.append(Efficiency(label, sum(losses) / len(losses), 100 * sum(r.param_ratio for r in rows) / len(rows),
                              sum(rps) / len(rps) if None not in rps else None, len(rows)))
    return sorted(out, key=lambda e: e.loss_per_10pct)  # stable: ties keep table order


def _summary_line(group: Group) -> str:
    ranked = efficiency(group)
    if not ranked:
        why = ("no accuracy was measured" if not group.task_metrics else
               "no dense accuracy to compare against" if group.dense is None or group.dense.accuracy is None
               else "no pruned accuracy to compare")
        return f"- **{group.title}**: {why}."
    best = ranked[0]
    line = (f"- **{group.title}**: `{best.label}` keeps the most accuracy per removed parameter: "
            f"{md.num(best.loss_per_10pct, 2)} accuracy points lost per 10 % of parameters removed "
            f"(mean over {best.n} budget{'s' if best.n > 1 else ''}, {md.num(best.removed_pct)} % removed, "
            f"RP {md.num(best.retained)} %).")
    if len(ranked) > 1:
        line += " Then " + ", ".join(f"`{e.label}` {md.num(e.loss_per_10pct, 2)}" for e in ranked[1:]) + "."
    se = group.dense.accuracy_stderr if group.dense is not None else None
    if se is not None:
        line += (f" The average accuracy's stderr is ±{md.num(100 * se)} points here (dense row), so gaps under about "
                 f"{md.num(200 * se)} points are within sampling noise.")
    return line


def _efficiency_table(group: Group) -> str:
    ranked = efficiency(group)
    if not ranked:
        return ""
    rows = [[f"`{e.label}`", str(e.n), md.num(e.removed_pct), md.num(e.loss_per_10pct, 2), md.num(e.retained)]
            for e in ranked]
    return md.table(["Method", "Budgets", "Removed % (mean)", "Points lost per 10 % removed ↓", "RP % (mean) ↑"],
                    rows)


def metric_columns(group: Group) -> list[Column]:
    """The measure columns of a group's table: every declared metric's, in the registry's order."""
    return [col for m in metrics() for col in m.leaderboard_columns(group)]


def _show(col: Column, group: Group, row: Row) -> str:
    if row.dense and not col.dense:
        return md.DASH
    value, stderr = col.value(group, row)
    if col.style == "pct":
        return md.pct(value, stderr, col.digits)
    if col.style == "ppl":
        return md.ppl(value)
    text = md.num(value, col.digits, col.suffix)
    return text if value is None or stderr is None else f"{text} ± {md.num(stderr, col.digits)}"


def _row_cells(group: Group, row: Row, seeds: bool, columns: list[Column]) -> list[str]:
    removed = row.layers_removed
    layers = md.DASH if removed is None else f"{removed}/{row.n_layers}" if row.n_layers else str(removed)
    cells = ["**dense**" if row.dense else f"`{row.label}`", "-" if row.dense else budget_label(row.budget)]
    if seeds:
        cells.append(md.DASH if row.seed is None else str(row.seed))
    cells += [layers, md.count(row.params_after), md.num(None if row.param_ratio is None else 100 * row.param_ratio)]
    return cells + [_show(col, group, row) for col in columns]


def group_table(group: Group) -> str:
    seeds = len(group.seeds) > 1
    columns = metric_columns(group)
    header = ["Method", "Budget", *(["Seed"] if seeds else []), "Layers removed", "Params", "Removed %",
              *[c.header for c in columns]]
    right = [False, False, *([True] if seeds else []), *[True] * (len(header) - 2 - seeds)]
    return md.table(header, [_row_cells(group, r, seeds, columns) for r in group.all_rows], right)


def _notes(group: Group) -> list[str]:
    metrics = ", ".join(f"{t} {m}" for t, m in group.task_metrics.items())
    notes = [f"Settings: {settings_text(group)}."]
    if group.task_metrics:
        notes.append(f"Avg acc is the unweighted mean over {len(group.task_metrics)} tasks of each task's headline "
                     f"metric ({metrics}); `±` is lm-eval's stderr of that metric.")
    for corpus, p in group.corpora.items():
        notes.append(f"PPL {corpus}: token perplexity in non-overlapping {p.window}-token windows "
                     f"({p.windows} windows, {p.tokens} tokens).")
    if group.dense is None:
        notes.append("No finished dense cell under these settings: RP, speed-up and the summary are missing.")
    if group.superseded:
        notes.append(f"{group.superseded} older record(s) of the same cells are not shown (the newest of each is).")
    present = dict.fromkeys(r.method for r in group.rows)
    titled = []
    for m in present:
        title, paper = method_title(m)
        if title:
            titled.append(f"`{m}` {title}" + (f" ([arXiv:{paper}](https://arxiv.org/abs/{paper}))" if paper else ""))
    if titled:
        notes.append("Methods: " + "; ".join(titled) + ".")
    return notes


def _figures(figures: Sequence[Figure], out_name: str) -> list[str]:
    return [f"![{f.caption}]({out_name}/{f.path.name})" for f in figures]


def _failed(coll: Collection) -> str:
    rows = []
    for r in coll.failed:
        cell, err = r.cell, r.error or CellError()
        message = str(err.message or "").splitlines()[0][:160] if err.message else md.DASH
        rows.append([str(cell.model), f"`{cell.method}`", budget_label(cell.budget),
                     md.DASH if cell.seed is None else str(cell.seed), str(err.stage or md.DASH),
                     f"{err.type or r.status}: {message}", f"`cells/{r.key}/record.json`"])
    return md.table(["Model", "Method", "Budget", "Seed", "Stage", "Error", "Record"], rows, [False] * 7)


COLUMNS = """\
## Columns

- **Layers removed**: net decoder layers removed / the dense model's layers. **Params**: parameters left
  (tied weights counted once). **Removed %**: removed parameters / dense parameters (embeddings included).
- **Avg acc**: mean over the tasks of each task's headline metric (named in the column header, acc or
  acc_norm); per-task cells show that metric with lm-eval's stderr. **RP**: retained performance, the
  row's Avg acc as % of the dense row's.
- **Stability**: LLM-Streamline's stability against the dense model's per-sample answers (%, mean over
  the multiple-choice tasks).
- **Decode ×**: decode tokens/s over the dense model's, same device and probe, their repeats interleaved in
  the cell (so the machine's drift during a run does not enter the ratio).
- **Prune s**: calibration capture + scoring + surgery, in seconds; **Train s**: healing or replacement
  training, in seconds.
- **Points lost per 10 % removed**: (dense Avg acc − Avg acc) in points, divided by the share of parameters
  removed in tens of percent; lower keeps more accuracy per removed parameter.
"""


def render(coll: Collection, provenance: str, figures: dict[str, list[Figure]], figures_dir: str) -> str:
    """The leaderboard page; `figures` maps a group's slug to its figures (linked relative to the page)."""
    parts = ["# Leaderboard\n",
             "Generated by `bench report` from the result store; every number is read from the store's records.\n",
             provenance,
             "## Accuracy retained per removed parameter\n",
             "\n".join(_summary_line(g) for g in coll.groups) + "\n"]
    for group in coll.groups:
        parts.append(f"## {group.title}\n")
        parts.append(group_table(group))
        parts.append("\n".join(_notes(group)) + "\n")
        eff = _efficiency_table(group)
        if eff:
            parts.append(f"### {group.title}: accuracy retained per removed parameter\n")
            parts.append(eff)
        figs = _figures(figures.get(group.slug, []), figures_dir)
        if figs:
            parts.append("\n\n".join(figs) + "\n")
    if coll.failed:
        parts.append("## Failed cells\n")
        parts.append(_failed(coll))
    parts.append(COLUMNS)
    return "\n".join(parts)
