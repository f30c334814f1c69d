"""bench.stats against hand-computed cases and scipy's own reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from bench.stats.bootstrap import contrast_interval, difference_interval, draws
from bench.stats.compare import Family, best_of, compare
from bench.stats.samples import Aligned, align
from bench.stats.significance import holm, mcnemar, sign_flip_p
from bench.stats.speedup import speedup_ci


def _cell(task_bits: dict[str, list[int]], metric: str = "acc") -> dict[str, list[dict]]:
    return {t: [{"doc_id": i, metric: float(v)} for i, v in enumerate(bits)] for t, bits in task_bits.items()}


def test_mcnemar_hand_computed():
    # 1 document right only under A, 5 only under B: p = 2 * P(X <= 1), X ~ Bin(6, 1/2) = 2 * 7/64
    a = [1, 0, 0, 0, 0, 0, 1, 1]
    b = [0, 1, 1, 1, 1, 1, 1, 0]
    r = mcnemar(a, b)
    assert (r.only_a, r.only_b, r.n) == (2, 5, 8)
    assert r.p == pytest.approx(2 * (1 + 7 + 21) / 128)          # 2 * P(X <= 2), X ~ Bin(7, 1/2)
    assert mcnemar([0] * 6, [1] * 6).p == pytest.approx(2 / 64)
    assert mcnemar([1, 0], [1, 0]).p == 1.0
    assert mcnemar([1, 0], [0, 1]).p == 1.0


def test_holm_hand_computed():
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> monotone 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_sign_flip_on_one_task_is_exact_mcnemar():
    rng = np.random.default_rng(3)
    a = (rng.random(60) < 0.6).astype(float)
    b = a.copy()
    flip = rng.choice(60, size=11, replace=False)
    b[flip] = 1 - b[flip]
    aligned = align([_cell({"t": list(a)}), _cell({"t": list(b)})], {"t": "acc"})
    assert sign_flip_p(aligned) == pytest.approx(mcnemar(a, b).p, rel=1e-9)


def test_sign_flip_is_stratified_and_deterministic():
    # task u: A wins 12 of 12 discordant documents out of 20; task v: no difference
    a = {"u": [1] * 12 + [0] * 8, "v": [1, 0] * 50}
    b = {"u": [0] * 12 + [0] * 8, "v": [1, 0] * 50}
    aligned = align([_cell(a), _cell(b)], {"u": "acc", "v": "acc"})
    p = sign_flip_p(aligned)
    assert p == pytest.approx(2 / 2 ** 12)    # exact: only the all-positive and all-negative flips are as extreme
    assert sign_flip_p(aligned) == p


def test_bootstrap_matches_scipy_on_one_task():
    rng = np.random.default_rng(0)
    a = (rng.random(200) < 0.55).astype(float)
    b = np.where(rng.random(200) < 0.2, 1 - a, a)
    aligned = align([_cell({"t": list(a)}), _cell({"t": list(b)})], {"t": "acc"})
    ours = difference_interval(aligned)
    ref = sps.bootstrap((a - b,), np.mean, method="percentile", n_resamples=20000,
                        rng=np.random.default_rng(1)).confidence_interval
    assert ours.estimate == pytest.approx(np.mean(a - b))
    assert ours.low == pytest.approx(ref.low, abs=0.01)
    assert ours.high == pytest.approx(ref.high, abs=0.01)


def test_avg_is_the_unweighted_mean_over_tasks():
    # task s: 2 documents, task l: 4; Avg weighs the tasks equally, not the documents
    a = {"s": [1, 1], "l": [1, 0, 0, 0]}
    b = {"s": [0, 0], "l": [1, 1, 1, 0]}
    aligned = align([_cell(a), _cell(b)], {"s": "acc", "l": "acc"})
    assert aligned.means() == pytest.approx([(1.0 + 0.25) / 2, (0.0 + 0.75) / 2])
    reps = draws(aligned, iters=500)
    assert reps.shape == (500, 2)
    # task s always gives A 1.0 and B 0.0 in every draw: the difference never goes below (1 - 1) / 2
    assert (reps[:, 0] - reps[:, 1]).min() >= -0.5 + 1e-12
    ci = contrast_interval(aligned, [1, -1], reps)
    assert ci.low <= ci.estimate <= ci.high


def test_documents_are_matched_by_id_not_position():
    a = {"t": [{"doc_id": 0, "acc": 1.0}, {"doc_id": 1, "acc": 0.0}, {"doc_id": 2, "acc": 1.0}]}
    b = {"t": [{"doc_id": 2, "acc": 1.0}, {"doc_id": 0, "acc": 1.0}]}
    aligned = align([a, b], {"t": "acc"})
    assert aligned.tasks["t"].tolist() == [[1.0, 1.0], [1.0, 1.0]]
    assert aligned.dropped == {"t": 1}


def test_headline_metric_decides_correctness():
    a = {"t": [{"doc_id": 0, "acc": 1.0, "acc_norm": 0.0}]}
    assert align([a], {"t": "acc_norm"}).tasks["t"].tolist() == [[0.0]]
    assert align([a], {"t": "acc"}).tasks["t"].tolist() == [[1.0]]


def test_family_holm_and_best_of():
    rng = np.random.default_rng(5)
    base = (rng.random(300) < 0.5).astype(int)
    strong = np.where(rng.random(300) < 0.5, 1, base)     # many documents gained
    same = base.copy()
    same[:4] = 1 - same[:4]
    cells = {"x": _cell({"t": list(strong)}), "y": _cell({"t": list(base)}), "z": _cell({"t": list(same)})}
    fam = Family()
    pairs = {}
    for i, j in (("x", "y"), ("x", "z"), ("y", "z")):
        pairs[frozenset((i, j))] = fam.add(compare(cells[i], cells[j], {"t": "acc"}, (i, j)))
    fam.close()
    ps = [c.p for c in fam.comparisons]
    assert [c.p_holm for c in fam.comparisons] == pytest.approx(holm(ps))
    means = {k: np.mean([r["acc"] for r in v["t"]]) for k, v in cells.items()}
    best, tied = best_of(["x", "y", "z"], means, pairs)
    assert best == "x" and tied == ["x"]
    best, tied = best_of(["y", "z"], means, pairs)
    assert best is None and set(tied) == {"y", "z"}


def test_speedup_ci_is_the_median_with_an_order_statistic_interval():
    pruned = [24.0, 24.4, 21.3, 23.0, 22.5, 23.9, 24.1, 22.8, 23.3]
    dense = [18.6, 18.7, 15.1, 17.9, 17.2, 18.0, 18.2, 17.5, 17.7]
    ratios = sorted(np.array(pruned) / np.array(dense))
    ci = speedup_ci(pruned, dense)
    assert ci.estimate == pytest.approx(float(np.median(ratios)))
    assert (ci.low, ci.high) == pytest.approx((ratios[1], ratios[7]))   # 2nd and 8th of 9
    assert ci.coverage == pytest.approx(1 - 2 * sps.binom.cdf(1, 9, 0.5)) and ci.coverage >= 0.95
    assert ci.repeats == 9
    # one very slow repeat (a 10x slower pruned run) moves neither the estimate nor the interval much
    slow = speedup_ci([2.4, *pruned[1:]], dense)
    assert slow.estimate == pytest.approx(ci.estimate, rel=0.02) and slow.low >= ratios[0] * 0.99
    five = speedup_ci(pruned[:5], dense[:5])   # too few repeats for a 95 % interval: the median alone
    assert five.low is None and five.estimate == pytest.approx(float(np.median(np.array(pruned[:5]) / dense[:5])))
    six = speedup_ci(pruned[:6], dense[:6])
    assert (six.low, six.high) == pytest.approx((min(ratios6 := np.array(pruned[:6]) / dense[:6]), max(ratios6)))
    one = speedup_ci([2.0], [1.0])
    assert one.estimate == 2.0 and one.low is None
    with pytest.raises(ValueError):
        speedup_ci([1.0, 2.0], [1.0])


def test_sign_flip_agrees_with_scipy_permutation_test_when_drawn():
    rng = np.random.default_rng(11)
    a = {t: list((rng.random(80) < 0.6).astype(int)) for t in ("u", "v")}
    b = {t: [x if rng.random() > 0.3 else 1 - x for x in a[t]] for t in ("u", "v")}
    aligned = align([_cell(a), _cell(b)], {"u": "acc", "v": "acc"})
    ours = sign_flip_p(aligned)
    w = np.concatenate([(x[:, 0] - x[:, 1]) / (2 * 80) for x in (aligned.tasks[t] for t in sorted(aligned.tasks))])
    ref = sps.permutation_test((w, np.zeros_like(w)), lambda x, y, axis: np.sum(x - y, axis=axis),
                               permutation_type="samples", vectorized=True, n_resamples=20000,
                               rng=np.random.default_rng(2)).pvalue
    assert ours == pytest.approx(ref, abs=0.02)


def test_sign_flip_is_exact_against_enumeration_on_two_tasks_of_different_sizes():
    """The lattice convolution equals full enumeration of the 2^m sign patterns (m = 16 discordant
    documents over tasks of 20 and 30 documents, weights 1/40 and 1/60)."""
    from itertools import product

    rng = np.random.default_rng(5)
    tasks = {"u": np.zeros((20, 2)), "v": np.zeros((30, 2))}
    for x, discordant in ((tasks["u"], 7), (tasks["v"], 9)):
        idx = rng.choice(x.shape[0], discordant, replace=False)
        x[idx, 0] = rng.random(discordant) < 0.8
        x[idx, 1] = 1 - x[idx, 0]
    aligned = Aligned(tasks, {})
    w = np.concatenate([(x[:, 0] - x[:, 1]) / (2 * x.shape[0]) for x in (tasks["u"], tasks["v"])])
    w = w[w != 0]
    observed = abs(w.sum())
    null = [abs(np.dot(signs, np.abs(w))) for signs in product((-1.0, 1.0), repeat=w.size)]
    exact = np.mean(np.array(null) >= observed - 1e-12)
    assert sign_flip_p(aligned) == pytest.approx(exact, rel=1e-9)


def test_sign_flip_at_the_standard_presets_size_is_exact_and_quick():
    rng = np.random.default_rng(9)
    sizes = [1000] * 6 + [500]
    tasks = {f"t{i}": np.stack([rng.random(n) < 0.53, rng.random(n) < 0.5], 1).astype(float)
             for i, n in enumerate(sizes)}
    p = sign_flip_p(Aligned(tasks, {}))
    w = np.concatenate([(x[:, 0] - x[:, 1]) / (7 * x.shape[0]) for x in (tasks[t] for t in sorted(tasks))])
    from bench.stats.significance import adaptive_sign_flip_p

    drawn = adaptive_sign_flip_p(w, first=200_000, family_size=1)
    assert 0.001 < p < 0.2 and drawn == pytest.approx(p, rel=0.1)   # the Monte Carlo estimate agrees


def test_adaptive_draws_clear_every_holm_threshold():
    """A p-value near a Holm threshold gets more draws, until its 99.9 % interval clears every threshold."""
    from bench.stats.significance import ADAPTIVE_CONFIDENCE, clopper_pearson, holm_thresholds

    rng = np.random.default_rng(3)
    w = rng.normal(0.0, 1.0, 60) + 0.25
    from bench.stats.significance import adaptive_sign_flip_p

    p = adaptive_sign_flip_p(w, family_size=4, seed=1)
    again = adaptive_sign_flip_p(w, family_size=4, seed=2)
    thresholds = holm_thresholds(4)
    assert [p <= t for t in thresholds] == [again <= t for t in thresholds]   # the same decisions
    for n_draws in (10_000, 100_000, 1_000_000):   # the round the test stopped at: its interval clears them
        hits = round(p * (n_draws + 1)) - 1
        if abs((hits + 1) / (n_draws + 1) - p) < 1e-12:
            low, high = clopper_pearson(hits, n_draws, ADAPTIVE_CONFIDENCE)
            assert n_draws == 1_000_000 or not any(low <= t <= high for t in thresholds)
            break
    else:
        raise AssertionError("p is not (hits + 1) / (draws + 1) of any round")
