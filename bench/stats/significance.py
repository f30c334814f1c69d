"""Paired tests: exact McNemar per task, an exact stratified sign-flip test of the Avg difference, Holm.

- McNemar (exact): of the documents the two models answer differently, b are right only under A and c
  only under B; under H0 (no difference) b ~ Binomial(b + c, 1/2). Two-sided p from scipy's binomtest.
- Avg difference: D = mean over tasks of (acc_A,t − acc_B,t) = sum_i w_i d_i with d_i = A_i − B_i and
  w_i = 1 / (K n_t). Under H0 the two answers of a document are exchangeable, i.e. each d_i's sign can be
  flipped: a paired randomization test (what scipy's permutation_test does with permutation_type="samples").
  Only discordant documents move the statistic. Its null distribution is computed *exactly*: every w_i |d_i|
  is an integer multiple of one lattice step (1 / (K L), L the least common multiple of the task sizes), so
  the distribution of D is the convolution of each document's two-point distribution on that lattice,
  counted in integers of the step (no floating-point ties) and convolved per task as a binomial. Where the
  lattice would be too fine (more than `MAX_LATTICE` points: task sizes with a huge common multiple) the
  test draws random sign patterns *adaptively* (`adaptive_sign_flip_p`): in rounds of growing size until a
  99.9 % Clopper-Pearson interval of the p-value lies on one side of every Holm threshold alpha / k it could
  face, so Monte Carlo error cannot move a decision. The earlier fixed 10,000 draws (then multiplied by
  ~120 under Holm) put one verdict at 0.060 where the exact p was 0.041.
- Holm: step-down adjustment of the p-values of one family (the comparisons one page makes); it holds
  the family-wise error rate without assuming independence. Its decisions depend only on which side of
  each alpha / k every p-value lies (p_(j) <= alpha / (m - j + 1) iff at least j p-values are <= it), which
  is what the adaptive test secures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.stats import ALPHA, ITERS, SEED
from bench.stats.samples import Aligned


@dataclass(frozen=True)
class McNemar:
    only_a: int      # documents right under A only
    only_b: int      # right under B only
    n: int           # documents compared
    p: float

    @property
    def discordant(self) -> int:
        return self.only_a + self.only_b


def mcnemar(a: Sequence[float], b: Sequence[float]) -> McNemar:
    """Exact two-sided McNemar test of paired 0/1 outcomes (p = 1 when no pair disagrees)."""
    from scipy.stats import binomtest

    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes of different lengths: {a.shape} vs {b.shape}")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    p = 1.0 if only_a + only_b == 0 else float(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    return McNemar(only_a, only_b, int(a.size), min(p, 1.0))


EXACT_UP_TO = 13   # discordant documents up to which every sign pattern is enumerated (2^13 = 8192)
MAX_LATTICE = 20_000_000   # lattice points of the exact null distribution before the test draws instead
ADAPTIVE_ROUNDS = (90_000, 900_000)   # draws of the adaptive test's later rounds (after `first`)
ADAPTIVE_CONFIDENCE = 0.999   # the Clopper-Pearson level that must clear every Holm threshold


def _weighted_differences(aligned: Aligned) -> list[tuple[np.ndarray, int]]:
    """Per task (sorted): the nonzero paired differences d_i = A_i − B_i and the task's document count."""
    out = []
    for task in sorted(aligned.tasks):
        x = aligned.tasks[task]
        d = x[:, 0] - x[:, 1]
        out.append((d[d != 0], int(x.shape[0])))
    return out


def _lattice(parts: list[tuple[np.ndarray, int]], k: int) -> tuple[list[np.ndarray], int] | None:
    """Each task's |d_i| w_i as integers of one lattice step, or None when the values are not on a common
    lattice (non-rational differences) or it has more than `MAX_LATTICE` points."""
    from fractions import Fraction

    fracs = []
    for d, n in parts:
        fr = [Fraction(float(v)).limit_denominator(1000) for v in np.abs(d)]
        if any(abs(float(f) - float(v)) > 1e-12 for f, v in zip(fr, np.abs(d), strict=True)):
            return None
        fracs.append([f / (k * n) for f in fr])
    denominators = [f.denominator for fr in fracs for f in fr]
    step = math.lcm(*denominators) if denominators else 1
    as_ints = [[int(f * step) for f in fr] for fr in fracs]   # Python integers: no overflow in the check
    if sum(sum(v) for v in as_ints) * 2 + 1 > MAX_LATTICE:
        return None
    return [np.array(v, dtype=np.int64) for v in as_ints], step


def _two_sided_exact(ints: list[np.ndarray], observed: int) -> float:
    """P(|sum_i s_i c_i| >= |observed|) for independent fair signs s_i and integer magnitudes c_i: the
    convolution of the two-point distributions, documents of equal magnitude taken together as binomials."""
    from scipy.signal import fftconvolve
    from scipy.stats import binom

    dist = np.ones(1)   # the distribution of the running sum, offset so that index 0 is -(sum so far)
    for c in (v for v in ints if v.size):
        values, counts = np.unique(c, return_counts=True)
        for value, count in zip(values.tolist(), counts.tolist(), strict=True):
            pmf = binom.pmf(np.arange(count + 1), count, 0.5)   # j positive signs: sum = value (2j − count)
            spaced = np.zeros(2 * value * count + 1)
            spaced[::2 * value] = pmf
            dist = fftconvolve(dist, spaced) if dist.size * spaced.size > 4_000_000 else np.convolve(dist, spaced)
            dist = np.clip(dist, 0.0, None)
    half = (dist.size - 1) // 2
    support = np.arange(dist.size) - half
    return float(min(1.0, dist[np.abs(support) >= abs(observed)].sum() / dist.sum()))


def sign_flip_p(aligned: Aligned, iters: int = ITERS, seed: int = SEED, family_size: int = 1) -> float:
    """Two-sided p of the paired Avg difference of arm 0 − arm 1 (stratified weights 1/(K n_t)).

    The same test as scipy's `permutation_test(..., permutation_type="samples")` on the pairs (w_i, 0):
    exact (the convolution over the lattice of the weights), or, where no such lattice is small enough,
    `adaptive_sign_flip_p` with the Holm thresholds of a family of `family_size` tests.
    """
    parts = _weighted_differences(aligned)
    k = len(aligned.tasks)
    m = sum(d.size for d, _ in parts)
    if m == 0:
        return 1.0
    lattice = _lattice(parts, k)
    if lattice is not None:
        ints, _ = lattice
        signs = [np.sign(d).astype(np.int64) for d, _ in parts]
        observed = int(sum(int((s * c).sum()) for s, c in zip(signs, ints, strict=True)))
        return _two_sided_exact(ints, observed)
    w = np.concatenate([d / (k * n) for d, n in parts])
    return adaptive_sign_flip_p(w, family_size=family_size, seed=seed, first=iters)


def holm_thresholds(family_size: int, alpha: float = ALPHA) -> list[float]:
    """Every threshold a Holm decision in a family of `family_size` tests compares a p-value with."""
    return [alpha / j for j in range(1, max(1, family_size) + 1)]


def clopper_pearson(hits: int, n: int, level: float) -> tuple[float, float]:
    from scipy.stats import beta

    tail = (1.0 - level) / 2.0
    low = 0.0 if hits == 0 else float(beta.ppf(tail, hits, n - hits + 1))
    high = 1.0 if hits == n else float(beta.ppf(1.0 - tail, hits + 1, n - hits))
    return low, high


def adaptive_sign_flip_p(w: np.ndarray, *, family_size: int = 1, seed: int = SEED, first: int = ITERS,
                         confidence: float = ADAPTIVE_CONFIDENCE) -> float:
    """Two-sided sign-flip p of sum_i w_i (any real w_i), exact for up to EXACT_UP_TO nonzero terms, else by
    seeded random sign patterns in rounds (`first`, then ADAPTIVE_ROUNDS) until the `confidence`
    Clopper-Pearson interval of the p-value excludes every Holm threshold of the family, or the rounds run
    out (at 1,000,000 draws a p-value near 0.05 has a Monte Carlo standard error of 2e-4). Returns
    (hits + 1) / (draws + 1)."""
    w = np.asarray(w, dtype=np.float64)
    w = w[w != 0]
    m = w.size
    if m == 0:
        return 1.0
    observed = abs(float(w.sum()))
    tol = 1e-9 * max(observed, float(np.abs(w).sum()))
    if m <= EXACT_UP_TO:
        patterns = (np.arange(2 ** m)[:, None] >> np.arange(m)) & 1
        null = np.abs((1 - 2 * patterns) @ np.abs(w))
        return float(min(1.0, np.mean(null >= observed - tol)))
    rng = np.random.default_rng(seed)
    thresholds = holm_thresholds(family_size)
    hits = draws = 0
    for size in (first, *ADAPTIVE_ROUNDS):
        for start in range(0, size, 50_000):   # in blocks: bounded memory
            block = min(50_000, size - start)
            signs = rng.choice(np.array([-1.0, 1.0]), size=(block, m))
            hits += int(np.sum(np.abs(signs @ w) >= observed - tol))
        draws += size
        low, high = clopper_pearson(hits, draws, confidence)
        if not any(low <= t <= high for t in thresholds):
            break
    return float(min(1.0, (hits + 1) / (draws + 1)))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order: sorted ascending, p_(i) x (m − i + 1), made monotone
    by a running maximum and capped at 1."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: (pvalues[i], i))
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted
