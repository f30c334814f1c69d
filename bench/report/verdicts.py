"""The verdict sections of a leaderboard: per budget, each headline measure's compact letter grouping and how
many method pairs it separates, where accuracy and the document measures disagree, every pair's test, and
how the chosen layers move with the calibration seed. All statistics come from bench.report.evidence."""

from __future__ import annotations

from collections.abc import Sequence

from bench.report import markdown as md
from bench.report.evidence import GroupEvidence, document_pair
from bench.report.groups import Group
from bench.results.rows import Row, budget_label, canonical


def name(ev: GroupEvidence, key: str) -> str:
    row = next(r for r in ev.group.all_rows if r.key == key)
    return "dense" if row.dense else f"`{row.label}`" + (f" seed {row.seed}" if len(ev.group.seeds) > 1 else "")


def names(ev: GroupEvidence, rows: Sequence[Row]) -> str:
    return ", ".join(name(ev, r.key) for r in rows)


_METRIC_TITLES = {"accuracy": "Avg accuracy", "bits_per_byte": "bits per byte", "kl_to_dense": "KL to dense"}


def _metric_title(metric: str) -> str:
    name, _, corpus = metric.partition("/")
    return _METRIC_TITLES.get(name, name) + (f" ({corpus})" if corpus else "")


def _separated(ev: GroupEvidence, metric: str, a: str, b: str) -> tuple[bool, str | None]:
    """(significant, the favoured key) of one pair on one metric."""
    if metric == "accuracy":
        c = ev.pairs.get(frozenset((a, b)))
        return (False, None) if c is None else (c.significant, c.favours())
    name, _, corpus = metric.partition("/")
    c = document_pair(ev, name, corpus, a, b)
    return (False, None) if c is None else (c.significant, c.favours())


def verdicts(ev: GroupEvidence) -> list[str]:
    """Per budget: each headline metric's grouping (methods sharing a letter are not distinguishable, the
    first letter holds the best), how many method pairs it separates, and the pairs on which accuracy and
    KL (or bits per byte) point opposite ways."""
    group = ev.group
    lines = []
    for budget in group.budgets:
        metrics = [m for (b, m) in ev.letters if b == repr(canonical(budget))]
        if not metrics:
            continue
        rows = [r for r in group.rows if canonical(r.budget) == canonical(budget)]
        table_rows, counts = [], []
        for metric in metrics:
            assigned = ev.letters[(repr(canonical(budget)), metric)]
            keys = list(assigned)
            pairs = [(a, b) for n, a in enumerate(keys) for b in keys[n + 1:]]
            separated = sum(_separated(ev, metric, a, b)[0] for a, b in pairs)
            counts.append(f"{_metric_title(metric)} separates {separated} of {len(pairs)} pairs")
            table_rows.append([_metric_title(metric),
                               ", ".join(f"{name(ev, k)} {assigned[k]}" for k in keys)])
        lines.append(f"**{budget_label(budget)}** ({len(rows)} cells): " + "; ".join(counts) + ".\n")
        lines.append(md.table(["Measure", "Grouping, best first (a shared letter: not distinguishable)"], table_rows,
                              [False, False]))
        lines += _disagreements(ev, metrics, rows)
    return lines


def _disagreements(ev: GroupEvidence, metrics: list[str], rows: Sequence[Row]) -> list[str]:
    fidelity = [m for m in metrics if m.startswith("kl_to_dense/")] or [m for m in metrics if m.startswith("bits_per_byte/")]
    if "accuracy" not in metrics or not fidelity:
        return []
    out = []
    for n, a in enumerate(rows):
        for b in rows[n + 1:]:
            acc, acc_fav = _separated(ev, "accuracy", a.key, b.key)
            for metric in fidelity:
                fid, fid_fav = _separated(ev, metric, a.key, b.key)
                if acc and fid and acc_fav != fid_fav:
                    out.append(f"- {name(ev, a.key)} vs {name(ev, b.key)}: Avg accuracy favours "
                               f"{name(ev, acc_fav)}, {_metric_title(metric)} favours {name(ev, fid_fav)} "
                               "(both Holm-significant): the measures disagree.")
                elif acc != fid:
                    which, other = ("Avg accuracy", _metric_title(metric)) if acc else (_metric_title(metric), "Avg accuracy")
                    fav = acc_fav if acc else fid_fav
                    out.append(f"- {name(ev, a.key)} vs {name(ev, b.key)}: {which} separates them (favours "
                               f"{name(ev, fav)}), {other} does not.")
    if out:
        return ["Where the measures differ on a pair:\n", "\n".join(out) + "\n"]
    return ["Accuracy and the document measures agree on every pair they both separate.\n"]


def calibration_table(group: Group) -> str:
    """Per method and budget run under several seeds: the dense layers each seed removed (merged or
    replaced), and how much they overlap (mean pairwise Jaccard, and how many seeds chose the same set)."""
    runs: dict[tuple, list[Row]] = {}
    for row in group.rows:
        removed = row.record.pruning.removed_layers if row.record.pruning is not None else None
        if row.seed is not None and removed is not None:
            runs.setdefault((row.label, canonical(row.budget)), []).append(row)
    out = []
    for (label, _), rows in runs.items():
        if len(rows) < 2:
            continue
        sets = [frozenset(r.record.pruning.removed_layers) for r in sorted(rows, key=lambda r: r.seed)]
        pairs = [(a, b) for n, a in enumerate(sets) for b in sets[n + 1:]]
        jaccard = sum(len(a & b) / len(a | b) if a | b else 1.0 for a, b in pairs) / len(pairs)
        most = max(sets.count(x) for x in sets)
        chosen = "; ".join(f"seed {r.seed}: {_layers_text(r.record.pruning.removed_layers)}"
                           for r in sorted(rows, key=lambda r: r.seed))
        out.append([f"`{label}`", budget_label(rows[0].budget), chosen, f"{jaccard:.2f}", f"{most}/{len(sets)}"])
    if not out:
        return ""
    return md.table(["Method", "Budget", "Dense layers removed, per calibration seed", "Mean pairwise Jaccard",
                     "Seeds agreeing (largest identical set)"], out, [False, False, False, True, True])


def _layers_text(layers) -> str:
    """[3, 12, 13, 14, 25] -> "3, 12–14, 25"."""
    layers = sorted(int(x) for x in layers)
    out, start = [], None
    for i, x in enumerate(layers):
        if start is None:
            start = x
        if i + 1 == len(layers) or layers[i + 1] != x + 1:
            out.append(str(start) if start == x else f"{start}–{x}")
            start = None
    return ", ".join(out) or "none"


def comparisons_table(ev: GroupEvidence) -> str:
    """Every pair of methods at the same budget: Avg difference, its interval, p and Holm-adjusted p, and
    exact McNemar per task (documents right only under A / only under B, Holm-adjusted p)."""
    tasks = list(ev.group.task_metrics)
    rows = []
    for c in ev.pairs.values():
        a = next(r for r in ev.group.rows if r.key == c.a)
        verdict = (f"{name(ev, c.favours())} better" if c.favours() else "cannot tell apart")
        rows.append([budget_label(a.budget), name(ev, c.a), name(ev, c.b),
                     md.interval(c.diff.estimate, c.diff.low, c.diff.high, sign=True), md.pvalue(c.p),
                     md.pvalue(c.p_holm), verdict,
                     *[f"{c.tasks[t].only_a}/{c.tasks[t].only_b}, p {md.pvalue(c.tasks_holm.get(t))}"
                       if t in c.tasks else md.DASH for t in tasks]])
    if not rows:
        return ""
    return md.table(["Budget", "A", "B", "Avg A − B, points [95 % CI, unadjusted]", "p", "p (Holm)", "Verdict",
                     *[f"{t}: only A / only B, p (Holm)" for t in tasks]], rows,
                    [False, False, False, True, True, True, False, *[True] * len(tasks)])
