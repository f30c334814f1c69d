"""Stability (LLM-Streamline Eq. 5-6) against hand-computed cases, and the official script's bug."""

from __future__ import annotations

import math

import pytest

from bench.evaluate.answer_agreement import (
    agreement,
    choice_nlls,
    choice_perplexities,
    log_weight,
    stability,
    task_stability,
)

LN3, LN5 = math.log(3), math.log(5)


def rec(doc_id, loglik, n_tokens, acc, **extra):
    return {"doc_id": doc_id, "loglik": loglik, "n_tokens": n_tokens, "acc": acc, **extra}


# dense model: per-choice perplexities by construction
#   s0: exp(2/1), exp(4/2)   -> [e^2, e^2]  std 0           weight 1
#   s1: exp(0), exp(ln 3)    -> [1, 3]      std sqrt(2)     (ddof 0: 1)
#   s2: [1, 5, 1]                           std 4/sqrt(3)   (ddof 0: 4 sqrt(2) / 3)
DENSE = [rec(0, [-2.0, -4.0], [1, 2], 1.0), rec(1, [0.0, -LN3], [1, 1], 0.0),
         rec(2, [0.0, -LN5, 0.0], [1, 1, 1], 1.0)]
W = [1.0, math.exp(math.sqrt(2)), math.exp(4 / math.sqrt(3))]          # exp(std), ddof 1
W0 = [1.0, math.e, math.exp(4 * math.sqrt(2) / 3)]                      # exp(std), ddof 0


def test_choice_perplexities_and_weights_by_hand():
    assert choice_perplexities(DENSE[0]) == pytest.approx([math.e ** 2, math.e ** 2])
    assert choice_perplexities(DENSE[1]) == pytest.approx([1.0, 3.0])
    assert [math.exp(log_weight(r, spread="ppl")) for r in DENSE] == pytest.approx(W)
    assert [math.exp(log_weight(r, ddof=0, spread="ppl")) for r in DENSE] == pytest.approx(W0)


def test_agreement_counts_both_right_and_both_wrong():
    # s0 right->right, s1 wrong->wrong (agree), s2 right->wrong
    pruned = [rec(0, [0, 0], [1, 1], 1.0), rec(1, [0, 0], [1, 1], 0.0), rec(2, [0, 0, 0], [1, 1, 1], 0.0)]
    assert agreement(DENSE, pruned) == [True, True, False]
    assert task_stability(DENSE, pruned, spread="ppl") == pytest.approx((W[0] + W[1]) / sum(W))


def test_weights_come_from_the_dense_model_only():
    pruned = [rec(i, [-100.0] * len(r["loglik"]), [1] * len(r["loglik"]), r["acc"]) for i, r in enumerate(DENSE)]
    assert task_stability(DENSE, pruned, spread="ppl") == pytest.approx(1.0)
    pruned[2]["acc"] = 0.0
    assert task_stability(DENSE, pruned, spread="ppl") == pytest.approx((W[0] + W[1]) / sum(W))


def test_official_script_weights_the_first_m_samples_not_the_agreeing_ones():
    """Only s2 agrees (M = 1). The paper weights s2; the official script weights s0 (the first sample)."""
    pruned = [rec(0, [0, 0], [1, 1], 0.0), rec(1, [0, 0], [1, 1], 1.0), rec(2, [0, 0, 0], [1, 1, 1], 1.0)]
    paper = task_stability(DENSE, pruned, spread="ppl")
    official = task_stability(DENSE, pruned, official=True, spread="ppl")
    assert paper == pytest.approx(W[2] / sum(W))                 # 0.66: the agreeing sample weighs most
    assert official == pytest.approx(W0[0] / sum(W0))            # 0.10: a disagreeing sample's weight
    assert paper > 0.6 and official < 0.1


def test_samples_are_matched_by_subtask_and_doc_id_not_order():
    dense = [rec(0, [0.0, -LN3], [1, 1], 1.0, subtask="mmlu_a"), rec(0, [0.0, -LN5], [1, 1], 1.0, subtask="mmlu_b")]
    pruned = [rec(0, [0, 0], [1, 1], 0.0, subtask="mmlu_b"), rec(0, [0, 0], [1, 1], 1.0, subtask="mmlu_a")]
    w_a, w_b = math.exp(math.sqrt(2)), math.exp(math.sqrt(8))   # std of [1,3] and of [1,5]
    assert task_stability(dense, pruned, spread="ppl") == pytest.approx(w_a / (w_a + w_b))


def test_mismatched_samples_raise():
    with pytest.raises(ValueError, match="differ"):
        task_stability(DENSE, DENSE[:2], spread="ppl")


def test_large_perplexity_spreads_do_not_overflow():
    dense = [rec(0, [0.0, -5000.0], [1, 1], 1.0), rec(1, [0.0, -1.0], [1, 1], 1.0)]   # ppl e^5000: inf
    dense[1]["loglik"] = [0.0, -700.0]
    pruned = [rec(0, [0, 0], [1, 1], 1.0), rec(1, [0, 0], [1, 1], 0.0)]
    with pytest.raises(OverflowError):
        task_stability(dense, pruned, spread="ppl")           # exp(5000) itself is not representable: a loud failure
    dense[0]["loglik"] = [0.0, -705.0]          # std ~ 1e306: exp(std) overflows, log space does not
    value = task_stability(dense, pruned, spread="ppl")
    assert 0.0 <= value <= 1.0 and not math.isnan(value)


def test_correctness_metric_choice_and_fallback():
    dense = [rec(0, [0.0, -LN3], [1, 1], 1.0, acc_norm=0.0), rec(1, [0.0, -LN5], [1, 1], 1.0)]
    pruned = [rec(0, [0, 0], [1, 1], 1.0, acc_norm=1.0), rec(1, [0, 0], [1, 1], 1.0)]
    assert task_stability(dense, pruned, metric="acc", spread="ppl") == pytest.approx(1.0)
    w_a, w_b = math.exp(math.sqrt(2)), math.exp(math.sqrt(8))
    # acc_norm: s0 flips; s1 has no acc_norm (an acc-only task) and falls back to acc
    assert task_stability(dense, pruned, metric="acc_norm", spread="ppl") == pytest.approx(w_b / (w_a + w_b))


def test_suite_stability_is_the_mean_over_multiple_choice_tasks():
    pruned_flip = [dict(r, acc=1.0 - r["acc"]) for r in DENSE]
    lam = [rec(0, [-3.0], [2], 1.0)]
    res = stability({"a": DENSE, "b": DENSE, "lambada_openai": lam},
                    {"a": DENSE, "b": pruned_flip, "lambada_openai": lam})
    assert res.per_task == pytest.approx({"a": 1.0, "b": 0.0})
    assert res.mean == pytest.approx(0.5)
    assert res.skipped == ["lambada_openai"] and res.n == {"a": 3, "b": 3}
    assert res.to_dict()["official"] is False


def test_nll_spread_weights_by_the_std_of_per_token_nll():
    """spread="nll": std of -loglik/n_tokens (log PPL), what OpenCompass's "PPL" field holds."""
    assert choice_nlls(DENSE[0]) == pytest.approx([2.0, 2.0])
    assert choice_nlls(DENSE[2]) == pytest.approx([0.0, LN5, 0.0])
    w = [1.0, math.exp(LN3 / math.sqrt(2)), math.exp(LN5 / math.sqrt(3))]   # std of [0, ln3]; of [0, ln5, 0]
    assert [math.exp(log_weight(r, spread="nll")) for r in DENSE] == pytest.approx(w)
    pruned = [rec(0, [0, 0], [1, 1], 1.0), rec(1, [0, 0], [1, 1], 0.0), rec(2, [0, 0, 0], [1, 1, 1], 0.0)]
    assert task_stability(DENSE, pruned, spread="nll") == pytest.approx((w[0] + w[1]) / sum(w))
    res = stability({"t": DENSE}, {"t": pruned}, spread="nll")
    assert res.spread == "nll" and res.to_dict()["spread"] == "nll"
    with pytest.raises(ValueError, match="spread"):
        log_weight(DENSE[0], spread="log")


def test_default_is_the_nll_spread_with_agreement_ess_and_interval():
    """The default weights by the std of per-token NLL (OpenCompass's "PPL" field); the result carries
    plain agreement, Kish's effective sample size and a bootstrap interval, by hand on DENSE."""
    pruned = [rec(0, [0, 0], [1, 1], 1.0), rec(1, [0, 0], [1, 1], 0.0), rec(2, [0, 0, 0], [1, 1, 1], 0.0)]
    w = [1.0, math.exp(LN3 / math.sqrt(2)), math.exp(LN5 / math.sqrt(3))]
    assert task_stability(DENSE, pruned) == pytest.approx((w[0] + w[1]) / sum(w))
    res = stability({"t": DENSE}, {"t": pruned})
    assert res.spread == "nll"
    assert res.agreement == pytest.approx({"t": 2 / 3}) and res.agreement_mean == pytest.approx(2 / 3)
    assert res.ess["t"] == pytest.approx(sum(w) ** 2 / sum(x * x for x in w))
    low, high = res.ci["t"]
    assert 0.0 <= low <= res.per_task["t"] <= high <= 1.0
    assert res.mean_ci == pytest.approx([low, high])       # one task: the same draws
    assert stability({"t": DENSE}, {"t": pruned}).to_dict() == res.to_dict()   # seeded


def test_effective_sample_size_by_hand():
    from bench.evaluate.answer_agreement import effective_sample_size

    assert effective_sample_size([0.0] * 7) == pytest.approx(7.0)                   # equal weights: n
    assert effective_sample_size([0.0, math.log(3)]) == pytest.approx(16 / 10)      # (1+3)^2 / (1+9)
    assert effective_sample_size([0.0, 800.0]) == pytest.approx(1.0)                # one weight dominates


def test_headline_metric_per_task_decides_correctness():
    dense = [rec(0, [0.0, -LN3], [1, 1], 1.0, acc_norm=0.0), rec(1, [0.0, -LN5], [1, 1], 1.0, acc_norm=1.0)]
    pruned = [rec(0, [0, 0], [1, 1], 1.0, acc_norm=1.0), rec(1, [0, 0], [1, 1], 1.0, acc_norm=1.0)]
    by_acc = stability({"t": dense}, {"t": pruned}, metric={"t": "acc"})
    by_norm = stability({"t": dense}, {"t": pruned}, metric={"t": "acc_norm"})
    assert by_acc.per_task["t"] == pytest.approx(1.0) and by_acc.metrics == {"t": "acc"}
    assert by_norm.agreement["t"] == pytest.approx(0.5) and by_norm.metrics == {"t": "acc_norm"}
