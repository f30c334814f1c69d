"""reports/leaderboard.md: what the paired tests support, then per model the dense row and every method
and budget with every measure (intervals where there is sampling noise), the paired comparisons behind
each claim, stability in detail, the figures, and the failed cells."""

from __future__ import annotations

from collections.abc import Sequence

from bench.core.record import CellError
from bench.metrics import Column, metrics
from bench.metrics.perplexity import corpus_name
from bench.report import markdown as md
from bench.report.evidence import Evidence, GroupEvidence
from bench.report.figures import Figure
from bench.report.groups import Collection, Group, settings_text
from bench.report.verdicts import calibration_table, comparisons_table, name, names, verdicts
from bench.results.rows import Row, budget_label, method_title
from bench.stats import ALPHA


def claims(ev: GroupEvidence) -> list[str]:
    """One line per budget: the significant best, or the methods the tests cannot tell apart; and which
    cells are significantly below dense."""
    group = ev.group
    if ev.missing:
        return [f"- **{group.title}**: no paired statistics ({ev.missing}); no ranking is claimed."]
    lines = []
    for budget in group.budgets:
        rows = ev.rows_at(budget)
        if not rows:
            continue
        best, tied = ev.best(budget)
        if best is not None:
            worst = max(ev.pair(best, r).p_holm for r in rows if r is not best)
            text = (f"{name(ev, best.key)} beats every other method on Avg (paired, Holm-adjusted p ≤ "
                    f"{md.pvalue(worst)})")
        elif len(rows) == 1:
            text = f"only {name(ev, rows[0].key)} was run"
        else:
            text = (f"no method beats every other significantly; the tests cannot tell apart {names(ev, tied)} "
                    f"(top Avg {md.pct(tied[0].accuracy)} %)")
        below = [r for r in rows if r.key in ev.vs_dense and ev.vs_dense[r.key].significant
                 and ev.vs_dense[r.key].diff.estimate < 0]
        above = [r for r in rows if r.key in ev.vs_dense and ev.vs_dense[r.key].significant
                 and ev.vs_dense[r.key].diff.estimate > 0]
        same = [r for r in rows if r.key in ev.vs_dense and not ev.vs_dense[r.key].significant]
        parts = [f"significantly below dense: {names(ev, below)}" if below else "none significantly below dense"]
        if above:
            parts.append(f"significantly above dense: {names(ev, above)}")
        if same:
            parts.append(f"not distinguishable from dense: {names(ev, same)}")
        lines.append(f"- **{group.title}, {budget_label(budget)}**: {text}; " + "; ".join(parts) + ".")
    return lines


def _efficiency_table(coll: Collection, evidence: Evidence) -> str:
    rows = []
    for group in coll.groups:
        for e in evidence.of(group).efficiency:
            iv = e.points_per_10pct_layers
            rows.append([group.title, f"`{e.label}`", str(e.n), md.num(e.layers_pct), md.num(e.params_pct),
                         md.interval(iv.estimate, iv.low, iv.high, scale=1.0, digits=2, sign=True)])
    if not rows:
        return ""
    return md.table(["Model", "Method", "Cells", "Decoder layers removed % (mean)", "Params removed % (mean, total)",
                     "Points lost per 10 % of decoder layers removed [95 % CI] ↓"], rows,
                    [False, False, True, True, True, True])


def metric_columns(group: Group) -> list[Column]:
    """The measure columns of a group's table: every declared metric's, in the registry's order (the
    built-in ones read their intervals and p-values from `group.evidence`)."""
    return [col for m in metrics() for col in m.leaderboard_columns(group)]


def show(col: Column, group: Group, row: Row) -> str:
    """One cell of a metric column, formatted by the column's style (see bench.metrics.Column)."""
    if row.dense and not col.dense:
        return md.DASH
    value, extra = col.value(group, row)
    if col.style == "pct":
        text = md.pct(value, extra, col.digits)
    elif col.style == "ppl":
        text = md.ppl(value)
    elif col.style in ("interval", "signed"):
        low, high = extra if extra else (None, None)
        text = md.interval(value, low, high, sign=col.style == "signed")
    elif col.style == "ratio":
        low, high = extra if extra else (None, None)
        text = md.DASH if value is None else f"{value:.{col.digits}f}{col.suffix}" + (
            "" if low is None else f" [{low:.{col.digits}f}, {high:.{col.digits}f}]")
    elif col.style == "p":
        text = md.pvalue(value) + (" *" if extra else "")
    else:
        text = md.num(value, col.digits, col.suffix)
        text = text if value is None or extra is None else f"{text} ± {md.num(extra, col.digits)}"
    return text + (col.mark(group, row) if col.mark is not None and value is not None else "")


def _row_cells(group: Group, row: Row, seeds: bool, columns: list[Column]) -> list[str]:
    removed = row.layers_removed
    layers = md.DASH if removed is None else f"{removed}/{row.n_layers}" if row.n_layers else str(removed)
    layer_pct = 100.0 * removed / row.n_layers if removed is not None and row.n_layers else None
    cells = ["**dense**" if row.dense else f"`{row.label}`", "-" if row.dense else budget_label(row.budget)]
    if seeds:
        cells.append(md.DASH if row.seed is None else str(row.seed))
    cells += [layers, md.num(layer_pct)]
    if _has_sublayers(group):
        cells.append(_units_cell(row))
    cells += [md.count(row.params_after), md.num(None if row.param_ratio is None else 100 * row.param_ratio)]
    return cells + [show(col, group, row) for col in columns]


# the headline table's measure columns, by the start of the full table's header (the first that a group has
# of each entry): accuracy, its difference from dense, fidelity (KL to dense, else bits per byte), speed-up
HEADLINE = (("Avg acc",), ("Δ vs dense",), ("KL to dense", "Bits/byte"), ("Decode ×",))
COLLAPSED_BPB = 8.0  # bits per byte at or above a raw byte's 8 bits: the model predicts nothing
COLLAPSED_PPL = 2e5  # token perplexity above every zoo vocabulary (<= 152K tokens): worse than uniform guessing


def collapsed(row: Row) -> str:
    """Why a row's model counts as collapsed (it predicts text worse than uniform guessing, so its other
    numbers measure a broken model), or "": bits per byte at or above a raw byte's 8, or a token perplexity
    above the vocabulary size of every zoo model."""
    for f in row.record.part("fidelity") or []:
        if f.bits_per_byte is not None and f.bits_per_byte >= COLLAPSED_BPB:
            return f"{f.bits_per_byte:.1f} bits/byte {f.corpus}"
    for corpus, p in row.perplexity.items():
        if p.perplexity is not None and p.perplexity >= COLLAPSED_PPL:
            return f"PPL {corpus_name(corpus)} {md.ppl(p.perplexity)}"
    return ""


def _short(header: str) -> str:
    """A full-table header without its arrows and units, for the compact table (`Avg acc %`, `Decode ×`)."""
    for cut in (" [95 % CI]", ",", " ↑", " ↓"):
        header = header.split(cut)[0]
    return header


def headline(ev: GroupEvidence) -> tuple[list[str], list[list[str]], list[bool], list[str]]:
    """The compact table above the full one, and `bench run`'s closing table (the same strings): method,
    budget, Avg accuracy, Δ vs dense, KL to dense (else bits per byte), decode speed-up, each with its 95 %
    interval in brackets, and layers removed; in the page's row order. Values are the full table's columns,
    formatted by `show`. A collapsed model is marked in its method cell; the notes say why."""
    group = ev.group
    columns = metric_columns(group)
    picked = []
    for starts in HEADLINE:
        col = next((c for start in starts for c in columns if c.header.startswith(start)), None)
        if col is not None:
            picked.append(col)
    seeds = len(group.seeds) > 1
    header = ["Method", "Budget", *(["Seed"] if seeds else []), *[_short(c.header) for c in picked], "Layers removed"]
    rows, notes = [], []
    for row in group.all_rows:
        why = collapsed(row)
        name = "**dense**" if row.dense else f"`{row.label}`"
        if why:
            notes.append(f"{name} {budget_label(row.budget)}: {why}")
        removed = row.layers_removed
        rows.append([name + (" (collapsed)" if why else ""), "-" if row.dense else budget_label(row.budget),
                     *([md.DASH if row.seed is None else str(row.seed)] if seeds else []),
                     *[show(c, group, row) for c in picked],
                     md.DASH if removed is None else f"{removed}/{row.n_layers}" if row.n_layers else str(removed)])
    if any(r.record.latency is not None and r.record.latency.busy for r in group.all_rows):
        busy = ("(busy): a speed-up measured while the host ran other work (load average above its usable "
                "CPUs); shown, not comparable.")
    else:
        busy = ""
    if notes:
        notes = [f"Collapsed (worse than uniform guessing: at least {COLLAPSED_BPB:g} bits per byte, or a token "
                 f"perplexity above {COLLAPSED_PPL:,.0f}, more than any zoo model's vocabulary; its other numbers "
                 "measure a broken model): " + "; ".join(notes) + "."]
    return header, rows, [False, False, *([True] if seeds else []), *[True] * (len(picked) + 1)], \
        notes + ([busy] if busy else [])


def headline_table(ev: GroupEvidence) -> str:
    header, rows, right, notes = headline(ev)
    return md.table(header, rows, right) + "".join(f"\n{n}\n" for n in notes) + \
        "\nIn brackets: the 95 % interval (the full table's; its notes say how each is computed).\n"


def _has_sublayers(group: Group) -> bool:
    """Whether some cell of the group dropped attention or MLP sublayers alone (then the table says so)."""
    return any(r.units is not None for r in group.all_rows)


def _units_cell(row: Row) -> str:
    """Attention / MLP sublayers dropped alone / whole blocks removed (whole-layer plans: blocks only)."""
    if row.dense:
        return "-"
    units = row.units
    if units is None:
        return md.DASH if row.layers_removed is None else f"0 / 0 / {row.layers_removed}"
    return f"{len(units['attn'])} / {len(units['mlp'])} / {len(units['blocks'])}"


def group_table(ev: GroupEvidence) -> str:
    group = ev.group
    seeds = len(group.seeds) > 1
    columns = metric_columns(group)
    header = ["Method", "Budget", *(["Seed"] if seeds else []), "Layers removed", "Layers removed %",
              *(["Units removed (attn / MLP / blocks)"] if _has_sublayers(group) else []), "Params",
              "Params removed % (total)", *[c.header for c in columns]]
    right = [False, False, *([True] if seeds else []), *[True] * (len(header) - 2 - seeds)]
    table = md.table(header, [_row_cells(group, r, seeds, columns) for r in group.all_rows], right)
    if _has_sublayers(group):
        table += ("\n\n**Units removed (attn / MLP / blocks)**: attention sublayers dropped alone, MLP sublayers "
                  "dropped alone, whole decoder layers removed (a layer losing both counts as a block; whole-layer "
                  "methods remove blocks only). A dropped sublayer is skipped with its norm and its attention keeps "
                  "no KV cache; \"Layers removed\" counts whole blocks only, \"Params removed\" every unit.")
    return table


def stability_table(ev: GroupEvidence) -> str:
    """Per pruned cell and task: stability with its interval, plain agreement, Kish effective sample size."""
    tasks = list(ev.group.task_metrics)
    rows = []
    for row in ev.group.rows:
        stab = row.record.stability
        if stab is None or not stab.per_task:
            continue
        cells = [f"`{row.label}`", budget_label(row.budget)]
        for t in tasks:
            s, ci = stab.per_task.get(t), (stab.ci or {}).get(t) or [None, None]
            a, e, n = (stab.agreement or {}).get(t), (stab.ess or {}).get(t), (stab.n or {}).get(t)
            cells.append(f"{md.interval(s, *ci)} · {md.pct(a)} · {md.num(e)}/{n if n is not None else md.DASH}"
                         if s is not None else md.DASH)
        rows.append(cells)
    if not rows:
        return ""
    return md.table(["Method", "Budget", *[f"{t}: stability % [95 % CI] · agreement % · effective n/n" for t in tasks]],
                    rows, [False, False, *[True] * len(tasks)])


def _notes(ev: GroupEvidence) -> list[str]:
    group = ev.group
    metrics = ", ".join(f"{t} {m}" for t, m in group.task_metrics.items())
    notes = [f"Settings: {settings_text(group)}."]
    if group.task_metrics:
        notes.append(f"Avg acc is the unweighted mean over {len(group.task_metrics)} tasks of each task's headline "
                     f"metric ({metrics}); per-task `±` is lm-eval's stderr of that metric.")
        if ev.chance:
            notes.append("Chance: " + ", ".join(f"{t} {md.pct(c)} %" for t, c in ev.chance.items())
                         + f" (Avg {md.pct(ev.chance_avg)} %); {md.BELOW_CHANCE} marks a score at or below it.")
    for corpus, p in group.corpora.items():
        notes.append(f"PPL {corpus_name(corpus)}: token perplexity in non-overlapping {p.window}-token windows "
                     f"({p.windows} windows, {p.tokens} tokens); per token, so it depends on the "
                     "tokenizer and is comparable only within a model.")
    seen: set[str] = set()
    for row in group.all_rows:
        for f in row.record.part("fidelity") or []:
            if f.corpus not in seen:
                seen.add(f.corpus)
                notes.append(f"Bits/byte and KL to dense {f.corpus}: {f.documents} whole held-out documents "
                             f"({f.bytes} bytes, {f.tokens} tokens, {f.window}-token windows overlapping by one"
                             f" token, {f.prefix} first)"
                             + ("; too few documents for an interval." if (f.documents or 0) < 10 else "."))
    if group.dense is None:
        notes.append("No finished dense cell under these settings: RP, Δ vs dense and speed-up are missing.")
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


COLUMNS = f"""\
## Columns and statistics

- **Layers removed**: net decoder layers removed / the dense model's decoder layers, and as %: the basis
  that means the same on every model. **Params**: parameters left (tied weights counted once). **Params
  removed % (total)**: removed parameters / all dense parameters, embeddings included (so the same share of
  layers is a smaller share of a model with large embeddings).
- **Avg acc**: mean over the tasks of each task's headline metric (named in the column header, acc or
  acc_norm), with a 95 % interval from a paired bootstrap stratified by task (documents resampled within
  each task, the same draw for every row; 10,000 seeded draws). **Δ vs dense**: Avg − dense Avg in points,
  same bootstrap. **p vs dense (Holm)**: a paired sign-flip test of that difference (each document's
  answers under the two models exchanged; its null distribution computed exactly by convolution over the
  lattice of the task weights), Holm-adjusted within the model and budget (pruned vs dense and every pair
  of methods at that budget); `*`: p < {ALPHA}. Every interval is a per-comparison 95 % interval,
  unadjusted; the verdicts follow the adjusted p-values.
- **RP**: retained performance, Avg as % of dense Avg. **RP above chance**: (Avg − chance) / (dense Avg −
  chance), chance being each task's mean 1 / number of choices; RP over 100 % or a Δ whose interval holds
  0 is not better than dense. {md.BELOW_CHANCE}: at or below chance.
- **Stability**: LLM-Streamline's stability against the dense model's per-sample answers (%, mean over
  the multiple-choice tasks), weights exp(std of the dense model's per-choice mean NLL), correctness by each
  task's headline metric, with a bootstrap interval; the NLL is taken over question and answer tokens, as
  the official pipeline does (over the answer alone a few documents carried most of the weight). No
  test ranks methods by it: it has no arrow. **Agreement**: the unweighted share of documents both
  models get right or both get wrong. Per task, with Kish's effective sample size of the weights (how many
  equally weighted documents the weighted figure is worth), in the stability table.
- **Paired comparisons**: Avg difference with its interval, sign-flip p, Holm-adjusted p; per task the
  documents right only under A and only under B with the exact McNemar p (binomial on those discordant
  documents), Holm-adjusted over the per-task tests of that model and budget. A best method is named only
  where it beats each other method at that budget with Holm-adjusted p < {ALPHA}; bold marks only such a
  best. **Verdicts per budget**: per measure, a compact letter display (methods sharing a letter are not
  distinguishable by the Holm-adjusted tests; the first letter holds the best), the number of method pairs
  the measure separates, and the pairs on which accuracy and KL (or bits per byte) differ.
- **Bits/byte**: next-token NLL over whole held-out documents, in bits per UTF-8 byte (tokenizer-free, so
  it compares across models). **KL to dense**: KL(dense ‖ pruned) per token on the same tokens, nats.
  Intervals: a bootstrap over documents, shown from 10 documents up. Pairs of methods are compared on the
  same documents: a sign-flip test of the per-document differences (seeded draws, as many as it takes for
  the Holm decision to be safe from Monte Carlo error), Holm-adjusted per model, budget, measure and corpus.
- **Decode ×**: decode tokens/s over the dense model's, same device and probe, their repeats interleaved in
  the cell; the median of the per-repeat ratios with its distribution-free order-statistic interval (at
  least 95 % coverage; from 6 repeats up), so one slow repeat moves neither (per batch size where several
  were measured). **Weights + KV**: parameter bytes plus the KV cache of the latency probe (batch x
  (prompt + new) tokens, from the config), at the largest batch size measured; "–" where the record predates
  the KV figure.
- **Prune s**: calibration capture + scoring + surgery, in seconds; **Train s**: healing or replacement
  training, in seconds.
- **Points lost per 10 % of decoder layers removed**: 10 × (dense Avg − Avg) / share of decoder layers
  removed, mean over a method's budgets, with an interval from the same bootstrap; lower keeps more. Not a
  ranking: read the interval.
"""


def render(coll: Collection, provenance: str, figures: dict[str, list[Figure]], figures_dir: str,
           evidence: Evidence) -> str:
    """The leaderboard page; `figures` maps a group's slug to its figures (linked relative to the page)."""
    parts = ["# Leaderboard\n",
             "Generated by `bench report` from the result store; every number is read from the store's records.\n",
             provenance,
             "## What the paired tests support\n",
             f"{evidence.n_comparisons} paired comparisons of Avg accuracy in {evidence.n_families} families (one per "
             f"model and budget), each Holm-adjusted at α = {ALPHA}; bits per byte and KL to dense in families of "
             "their own. Intervals are per comparison (95 %, unadjusted): one that excludes 0 beside \"not "
             "distinguishable\" is a difference the family-wise test does not support.\n",
             "\n".join(line for g in coll.groups for line in claims(evidence.of(g))) + "\n"]
    eff = _efficiency_table(coll, evidence)
    if eff:
        parts += ["### Accuracy lost per decoder layer removed, all models\n", eff]
    for group in coll.groups:
        ev = evidence.of(group)
        parts.append(f"## {group.title}\n")
        parts.append(headline_table(ev))
        parts.append(f"All measures of {group.title}:\n")
        parts.append(group_table(ev))
        parts.append("\n".join(_notes(ev)) + "\n")
        verdict = verdicts(ev)
        if verdict:
            parts += [f"### {group.title}: verdicts per budget\n", "\n".join(verdict)]
        comp = comparisons_table(ev)
        if comp:
            parts += [f"### {group.title}: paired comparisons of methods at the same budget\n", comp]
        calib = calibration_table(group)
        if calib:
            parts += [f"### {group.title}: calibration sensitivity (layers chosen per seed)\n", calib]
        stab = stability_table(ev)
        if stab:
            parts += [f"### {group.title}: stability per task\n", stab]
        figs = _figures(figures.get(group.slug, []), figures_dir)
        if figs:
            parts.append("\n\n".join(figs) + "\n")
    if coll.failed:
        parts.append("## Failed cells\n")
        parts.append(_failed(coll))
    parts.append(COLUMNS)
    return "\n".join(parts)
