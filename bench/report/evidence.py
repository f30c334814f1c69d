"""The statistics behind a report's claims, computed once per render from the per-sample records.

For every group (one model under one setting) with per-sample records: each row's Avg with a stratified
paired bootstrap interval; each pruned row against dense and every pair of pruned rows at the same budget
as a `bench.stats.compare.Comparison` (Avg difference with interval, exact sign-flip p, exact McNemar per
task); the same pairs on bits per byte and KL to dense over the held-out documents
(`bench.stats.documents`); chance accuracy per task; the decode speed-up's paired interval; accuracy lost
per 10 % of *decoder layers* removed; and per budget a compact letter display per metric
(`bench.stats.grouping`): methods sharing a letter are not distinguishable.

Families for Holm's correction: one per model (group), budget and metric: the Avg comparisons of that
budget (against dense and between methods), the per-task McNemar tests of that budget, and the bits per
byte and KL comparisons of each corpus. A family is the question a reader asks ("which pruner for this
model at this budget, by this measure?"). Every interval on the pages is a per-comparison 95 % interval,
unadjusted; the verdicts follow the Holm-adjusted p-values, so an interval that excludes 0 beside "not
distinguishable" is a difference the family-wise test does not support.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bench.report.groups import Collection, Group
from bench.results.rows import Row, canonical
from bench.stats.bootstrap import Interval, contrast_interval, draws
from bench.stats.compare import Comparison, Family, best_of
from bench.stats.documents import METRICS as DOCUMENT_METRICS
from bench.stats.documents import DocumentComparison, compare_documents, per_document
from bench.stats.grouping import letters
from bench.stats.samples import Aligned, Samples, align
from bench.stats.significance import holm, mcnemar, sign_flip_p
from bench.stats.speedup import SpeedupCI


@dataclass(frozen=True)
class Efficiency:
    """One method's accuracy lost per 10 % of decoder layers removed, mean over its budgets."""

    label: str
    points_per_10pct_layers: Interval   # points of Avg lost per 10 % of decoder layers removed
    layers_pct: float                   # mean share of decoder layers removed (%)
    params_pct: float                   # mean share of all parameters removed (%, embeddings included)
    n: int                              # budgets averaged


@dataclass
class GroupEvidence:
    group: Group
    chance: dict[str, float] = field(default_factory=dict)        # task -> chance accuracy
    avg: dict[str, Interval] = field(default_factory=dict)        # row key -> Avg (fraction)
    vs_dense: dict[str, Comparison] = field(default_factory=dict)  # row key -> row − dense
    pairs: dict[frozenset, Comparison] = field(default_factory=dict)   # {key, key} -> a − b, same budget
    speedup: dict[str, SpeedupCI] = field(default_factory=dict)                  # first batch size
    efficiency: list[Efficiency] = field(default_factory=list)
    missing: str = ""                                             # why there are no statistics
    families: dict[str, Family] = field(default_factory=dict)     # budget -> its Avg / McNemar family
    documents: dict[tuple, DocumentComparison] = field(default_factory=dict)   # (metric, corpus, a, b) -> A − B
    letters: dict[tuple, dict[str, str]] = field(default_factory=dict)   # (budget, metric) -> row key -> letters

    @property
    def chance_avg(self) -> float | None:
        return sum(self.chance.values()) / len(self.chance) if self.chance else None

    def rp_above_chance(self, row: Row) -> float | None:
        """(Avg − chance) / (dense Avg − chance), in %."""
        c, d = self.chance_avg, self.group.dense.accuracy if self.group.dense else None
        if c is None or d is None or row.accuracy is None or d <= c:
            return None
        return 100.0 * (row.accuracy - c) / (d - c)

    def at_or_below_chance(self, task: str, score: float | None) -> bool:
        return score is not None and task in self.chance and score <= self.chance[task] + 1e-12

    def rows_at(self, budget) -> list[Row]:
        return [r for r in self.group.rows if canonical(r.budget) == canonical(budget) and r.key in self.avg]

    def pair(self, a: Row, b: Row) -> Comparison:
        return self.pairs[frozenset((a.key, b.key))]

    def best(self, budget) -> tuple[Row | None, list[Row]]:
        """The row that significantly beats every other row at `budget` (or None) and the rows it cannot
        tell apart from the top Avg (the top first)."""
        rows = self.rows_at(budget)
        by_key = {r.key: r for r in rows}
        means = {r.key: r.accuracy if r.accuracy is not None else -1.0 for r in rows}
        best, tied = best_of([r.key for r in rows], means, self.pairs)
        return (by_key[best] if best else None), [by_key[k] for k in tied]

    def task_best(self, budget, task: str) -> Row | None:
        """The row whose `task` score beats every other row at `budget` by exact McNemar (Holm-adjusted)."""
        rows = self.rows_at(budget)
        if len(rows) < 2:
            return None
        top = max(rows, key=lambda r: (r.task_score(task)[0] or -1.0, -rows.index(r)))
        for other in rows:
            if other is top:
                continue
            c = self.pair(top, other)
            test = c.tasks.get(task)
            wins = test is not None and ((test.only_a > test.only_b) == (c.a == top.key))
            if not (wins and c.tasks_holm.get(task, 1.0) < 0.05):
                return None
        return top


@dataclass
class Evidence:
    groups: dict[str, GroupEvidence]

    def of(self, group: Group) -> GroupEvidence:
        return self.groups[group.slug]

    @property
    def n_comparisons(self) -> int:
        """Avg comparisons over every family of the report."""
        return sum(len(f) for g in self.groups.values() for f in g.families.values())

    @property
    def n_families(self) -> int:
        return sum(len(g.families) for g in self.groups.values())


def _chance(samples: Samples, tasks) -> dict[str, float]:
    out = {}
    for task in tasks:
        records = [r for r in samples.get(task) or [] if len(r.get("loglik") or []) >= 2]
        if records:
            out[task] = sum(1.0 / len(r["loglik"]) for r in records) / len(records)
    return out


def _speedup(row: Row) -> SpeedupCI | None:
    """The decode speed-up at the record's first batch size with its paired interval."""
    from bench.metrics.latency import speedup_measure

    lat = row.record.latency
    m = speedup_measure(lat.to_dict()) if lat is not None and not row.dense else None
    return None if m is None else SpeedupCI(m.value, m.low, m.high, 0)


def _efficiency(group: Group, arms: dict[str, int], aligned: Aligned, reps) -> list[Efficiency]:
    by_label: dict[str, list[Row]] = {}
    for row in group.rows:
        if row.key in arms and row.layers_removed and row.n_layers:
            by_label.setdefault(row.label, []).append(row)
    out = []
    for label, rows in by_label.items():
        weights = [0.0] * aligned.n_arms
        for r in rows:   # points lost per 10 % of layers = 100 (dense − row) / (10 x 100 share) = 10 (d − r) / share
            share = r.layers_removed / r.n_layers
            weights[arms["dense"]] += 10.0 / share / len(rows)
            weights[arms[r.key]] -= 10.0 / share / len(rows)
        out.append(Efficiency(label, contrast_interval(aligned, weights, reps),
                              100 * sum(r.layers_removed / r.n_layers for r in rows) / len(rows),
                              100 * sum(r.param_ratio or 0.0 for r in rows) / len(rows), len(rows)))
    return out


def _comparison(aligned: Aligned, reps, i: int, j: int, a: str, b: str, family_size: int) -> Comparison:
    weights = [0.0] * aligned.n_arms
    weights[i], weights[j] = 1.0, -1.0
    pair = aligned.arms(i, j)
    tasks = {t: mcnemar(x[:, 0], x[:, 1]) for t, x in sorted(pair.tasks.items())}
    return Comparison(a, b, contrast_interval(aligned, weights, reps), sign_flip_p(pair, family_size=family_size),
                      tasks, n=sum(x.shape[0] for x in pair.tasks.values()))


def _budget_key(budget) -> str:
    return repr(canonical(budget))


def _family_size(n_rows: int, with_dense: bool) -> int:
    return n_rows * (n_rows - 1) // 2 + (n_rows if with_dense else 0)


def _document_comparisons(ev: GroupEvidence, fidelity: Mapping[str, list]) -> None:
    """Bits per byte and KL to dense of every pair of rows at one budget (and of each row against dense,
    bits per byte only: KL of dense to itself is 0 by definition), Holm-adjusted per budget, metric and
    corpus."""
    group = ev.group
    corpora = sorted({str(r.get("corpus")) for key in fidelity for r in fidelity[key] or []})
    for budget in group.budgets:
        rows = [r for r in group.rows if canonical(r.budget) == canonical(budget) and fidelity.get(r.key)]
        for metric in DOCUMENT_METRICS:
            for corpus in corpora:
                docs = {r.key: per_document(fidelity[r.key], corpus) for r in rows}
                pairs = [(r, s) for n, r in enumerate(rows) for s in rows[n + 1:]]
                dense_docs = (per_document(fidelity.get(group.dense.key) or [], corpus)
                              if group.dense is not None and metric == "bits_per_byte" else {})
                size = len(pairs) + (len(rows) if dense_docs else 0)
                found = []
                for r, s in pairs:
                    c = compare_documents(docs[r.key], docs[s.key], metric=metric, corpus=corpus,
                                          labels=(r.key, s.key), family_size=size)
                    if c is not None:
                        found.append(((metric, corpus, r.key, s.key), c))
                if dense_docs:
                    for r in rows:
                        c = compare_documents(docs[r.key], dense_docs, metric=metric, corpus=corpus,
                                              labels=(r.key, group.dense.key), family_size=size)
                        if c is not None:
                            found.append(((metric, corpus, r.key, group.dense.key), c))
                for (key, c), p in zip(found, holm([c.p for _, c in found]), strict=True):
                    c.p_holm = p
                    ev.documents[key] = c


def document_pair(ev: GroupEvidence, metric: str, corpus: str, a: str, b: str) -> DocumentComparison | None:
    return ev.documents.get((metric, corpus, a, b)) or ev.documents.get((metric, corpus, b, a))


def _groupings(ev: GroupEvidence) -> None:
    """Per budget: compact letters on Avg accuracy and on each document metric (per corpus)."""
    group = ev.group
    for budget in group.budgets:
        rows = ev.rows_at(budget)
        if len(rows) >= 2:
            order = sorted(rows, key=lambda r: (-(r.accuracy if r.accuracy is not None else -1.0), rows.index(r)))
            ev.letters[(_budget_key(budget), "accuracy")] = letters(
                [r.key for r in order], lambda a, b: ev.pairs[frozenset((a, b))].significant)
        keys = [r for r in group.rows if canonical(r.budget) == canonical(budget)]
        for metric, corpus in sorted({(m, c) for (m, c, _, _) in ev.documents}):
            present = [r for r in keys if any(k[:2] == (metric, corpus) and r.key in k[2:] for k in ev.documents)]
            if len(present) < 2:
                continue
            value = {r.key: _document_value(r, metric, corpus) for r in present}
            order = sorted(present, key=lambda r: (value[r.key] if value[r.key] is not None else float("inf"),
                                                  present.index(r)))

            def separated(a: str, b: str, metric=metric, corpus=corpus) -> bool:
                c = document_pair(ev, metric, corpus, a, b)
                return c is not None and c.significant

            ev.letters[(_budget_key(budget), f"{metric}/{corpus}")] = letters([r.key for r in order], separated)


def _document_value(row: Row, metric: str, corpus: str) -> float | None:
    for p in row.record.part("fidelity") or []:
        if p.corpus == corpus:
            return getattr(p, metric, None)
    return None


def group_evidence(group: Group, samples: Mapping[str, Samples], fidelity: Mapping[str, list] | None = None
                   ) -> GroupEvidence:
    ev = GroupEvidence(group)
    group.evidence = ev    # the metrics' leaderboard columns read intervals and p-values from it
    for row in group.all_rows:
        ci = _speedup(row)
        if ci is not None:
            ev.speedup[row.key] = ci
    _document_comparisons(ev, fidelity or {})
    rows = [r for r in group.all_rows if samples.get(r.key) and r.accuracy is not None]
    if not group.task_metrics:
        ev.missing = "no accuracy was measured"
        _groupings(ev)
        return ev
    if len(rows) < 2:
        ev.missing = "the store holds no per-sample records for these cells (samples.jsonl)"
        _groupings(ev)
        return ev
    ref = samples[group.dense.key] if group.dense and group.dense.key in samples else samples[rows[0].key]
    ev.chance = _chance(ref, group.task_metrics)
    try:
        aligned = align([samples[r.key] for r in rows], group.task_metrics)
    except ValueError as exc:
        ev.missing = str(exc)
        return ev
    reps = draws(aligned)
    arms = {("dense" if r.dense else r.key): i for i, r in enumerate(rows)}
    for i, r in enumerate(rows):
        weights = [0.0] * len(rows)
        weights[i] = 1.0
        ev.avg[r.key] = contrast_interval(aligned, weights, reps)
    pruned = [(i, r) for i, r in enumerate(rows) if not r.dense]
    for budget in group.budgets:
        at = [(i, r) for i, r in pruned if canonical(r.budget) == canonical(budget)]
        if not at:
            continue
        family = ev.families[_budget_key(budget)] = Family()
        size = _family_size(len(at), "dense" in arms)
        if "dense" in arms:
            for i, r in at:
                ev.vs_dense[r.key] = family.add(_comparison(aligned, reps, i, arms["dense"], r.key, group.dense.key,
                                                            size))
        for n, (i, r) in enumerate(at):
            for j, s in at[n + 1:]:
                ev.pairs[frozenset((r.key, s.key))] = family.add(_comparison(aligned, reps, i, j, r.key, s.key, size))
        family.close()
    if "dense" in arms:
        ev.efficiency = _efficiency(group, arms, aligned, reps)
    _groupings(ev)
    return ev


def evidence(coll: Collection, samples: Mapping[str, Samples], fidelity: Mapping[str, list] | None = None
             ) -> Evidence:
    """Statistics for every group of `coll` (`samples`: record key -> task -> per-sample records;
    `fidelity`: record key -> its fidelity.jsonl rows)."""
    groups = {g.slug: group_evidence(g, samples, fidelity) for g in coll.groups}
    return Evidence(groups)


def speedup_text(ci: SpeedupCI | None, fallback: float | None) -> str:
    if ci is None:
        return "–" if fallback is None else f"{fallback:.2f}×"
    if ci.low is None:
        return f"{ci.estimate:.2f}×"
    return f"{ci.estimate:.2f}× [{ci.low:.2f}, {ci.high:.2f}]"


def significant_low(c: Comparison) -> bool:
    return c.significant and c.diff.estimate < 0

