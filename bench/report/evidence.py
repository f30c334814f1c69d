"""The statistics behind a report's claims, computed once per render from the per-sample records.

For every group (one model under one setting) with per-sample records: each row's Avg with a stratified
paired bootstrap interval; each pruned row against dense and every pair of pruned rows at the same budget
as a `bench.stats.compare.Comparison` (Avg difference with interval, sign-flip p, exact McNemar per task);
chance accuracy per task (the mean over its documents of 1 / number of choices); the decode speed-up's
paired interval from the interleaved repeats; and accuracy lost per 10 % of *decoder layers* removed (a
basis that means the same on every model), with an interval from the same bootstrap draws.

All comparisons of the report form one family for Holm's correction (both pages show the same ones). A
page names a best method at a budget only when it beats every other method there with a Holm-adjusted
p < 0.05; otherwise it lists the methods it cannot tell apart from the top.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bench.report.groups import Collection, Group
from bench.report.rows import Row, canonical
from bench.stats.bootstrap import Interval, contrast_interval, draws
from bench.stats.compare import Comparison, Family, best_of
from bench.stats.samples import Aligned, Samples, align
from bench.stats.significance import mcnemar, sign_flip_p
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
    family: Family

    def of(self, group: Group) -> GroupEvidence:
        return self.groups[group.slug]


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


def _comparison(aligned: Aligned, reps, i: int, j: int, a: str, b: str) -> Comparison:
    weights = [0.0] * aligned.n_arms
    weights[i], weights[j] = 1.0, -1.0
    pair = aligned.arms(i, j)
    tasks = {t: mcnemar(x[:, 0], x[:, 1]) for t, x in sorted(pair.tasks.items())}
    return Comparison(a, b, contrast_interval(aligned, weights, reps), sign_flip_p(pair), tasks,
                      n=sum(x.shape[0] for x in pair.tasks.values()))


def group_evidence(group: Group, samples: Mapping[str, Samples], family: Family) -> GroupEvidence:
    ev = GroupEvidence(group)
    group.evidence = ev    # the metrics' leaderboard columns read intervals and p-values from it
    for row in group.all_rows:
        ci = _speedup(row)
        if ci is not None:
            ev.speedup[row.key] = ci
    rows = [r for r in group.all_rows if samples.get(r.key) and r.accuracy is not None]
    if not group.task_metrics:
        ev.missing = "no accuracy was measured"
        return ev
    if len(rows) < 2:
        ev.missing = "the store holds no per-sample records for these cells (samples.jsonl)"
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
    if "dense" in arms:
        for i, r in pruned:
            ev.vs_dense[r.key] = family.add(_comparison(aligned, reps, i, arms["dense"], r.key, group.dense.key))
        ev.efficiency = _efficiency(group, arms, aligned, reps)
    for n, (i, r) in enumerate(pruned):
        for j, s in pruned[n + 1:]:
            if canonical(r.budget) == canonical(s.budget):
                ev.pairs[frozenset((r.key, s.key))] = family.add(_comparison(aligned, reps, i, j, r.key, s.key))
    return ev


def evidence(coll: Collection, samples: Mapping[str, Samples]) -> Evidence:
    """Statistics for every group of `coll` (`samples`: record key -> task -> per-sample records)."""
    family = Family()
    groups = {g.slug: group_evidence(g, samples, family) for g in coll.groups}
    family.close()
    return Evidence(groups, family)


def speedup_text(ci: SpeedupCI | None, fallback: float | None) -> str:
    if ci is None:
        return "–" if fallback is None else f"{fallback:.2f}×"
    if ci.low is None:
        return f"{ci.estimate:.2f}×"
    return f"{ci.estimate:.2f}× [{ci.low:.2f}, {ci.high:.2f}]"


def significant_low(c: Comparison) -> bool:
    return c.significant and c.diff.estimate < 0

