"""The comparisons a page makes, tested as one family.

A `Comparison` is arm A vs arm B on the documents both answered: the Avg difference A − B with its
stratified paired bootstrap interval, the sign-flip p of that difference, and exact McNemar per task.
`Family` collects the comparisons of one page and Holm-adjusts their p-values together: the Avg p-values
as one family, the per-task McNemar p-values as another. A claim ("A beats B") needs the adjusted p of the
Avg difference below `ALPHA`.

Shares its name with bench.cli.compare: the paired comparisons the `bench compare` subcommand prints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bench.stats import ALPHA
from bench.stats.bootstrap import Interval, difference_interval
from bench.stats.samples import Samples, align
from bench.stats.significance import McNemar, holm, mcnemar, sign_flip_p


@dataclass
class Comparison:
    a: str                               # labels, as the page names the arms
    b: str
    diff: Interval                       # Avg(A) − Avg(B), as a fraction
    p: float                             # sign-flip test of the Avg difference, unadjusted
    tasks: dict[str, McNemar]
    p_holm: float = float("nan")         # adjusted within the page's family of Avg comparisons
    tasks_holm: dict[str, float] = field(default_factory=dict)
    n: int = 0                           # documents compared (all tasks)

    @property
    def significant(self) -> bool:
        return self.p_holm < ALPHA

    def favours(self) -> str | None:
        """The arm the significant difference favours, or None."""
        if not self.significant or self.diff.estimate == 0:
            return None
        return self.a if self.diff.estimate > 0 else self.b


def compare(a: Samples, b: Samples, metrics: Mapping[str, str], labels: tuple[str, str]) -> Comparison:
    """Arm `a` against arm `b` (per-sample records per task; `metrics`: task -> headline metric)."""
    aligned = align([a, b], metrics)
    tasks = {t: mcnemar(x[:, 0], x[:, 1]) for t, x in aligned.tasks.items()}
    return Comparison(labels[0], labels[1], difference_interval(aligned), sign_flip_p(aligned), tasks,
                      n=sum(x.shape[0] for x in aligned.tasks.values()))


@dataclass
class Family:
    """The comparisons of one page, Holm-adjusted together once `close()` is called."""

    comparisons: list[Comparison] = field(default_factory=list)

    def add(self, comparison: Comparison) -> Comparison:
        self.comparisons.append(comparison)
        return comparison

    def close(self) -> Family:
        for c, p in zip(self.comparisons, holm([c.p for c in self.comparisons]), strict=True):
            c.p_holm = p
        keys = [(i, t) for i, c in enumerate(self.comparisons) for t in sorted(c.tasks)]
        adjusted = holm([self.comparisons[i].tasks[t].p for i, t in keys])
        for (i, t), p in zip(keys, adjusted, strict=True):
            self.comparisons[i].tasks_holm[t] = p
        return self

    def __len__(self) -> int:
        return len(self.comparisons)


def best_of(labels: Sequence[str], means: Mapping[str, float], pairs: Mapping[frozenset, Comparison]
            ) -> tuple[str | None, list[str]]:
    """(the label that significantly beats every other, or None; the labels it cannot tell apart from the
    top Avg). `pairs` maps frozenset({x, y}) to their (closed) comparison."""
    if not labels:
        return None, []
    top = max(labels, key=lambda x: (means[x], -labels.index(x)))
    ties = [x for x in labels if x != top and not (pairs[frozenset((top, x))].favours() == top)]
    return (top if not ties and len(labels) > 1 else None), [top, *ties]
