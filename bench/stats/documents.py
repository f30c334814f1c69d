"""Paired comparisons of two models' bits per byte or KL to dense over the same held-out documents.

Fidelity (bench.evaluate.bits_per_byte) keeps per-document sums: next-token NLL (nats), KL(dense || model)
summed over the document's tokens, its UTF-8 bytes and its scored tokens. Two cells of one dense model score
the same documents, so their difference is paired by document:

- bits per byte: BPB_A − BPB_B = sum_i (nll_A,i − nll_B,i) / (ln 2 · sum_i bytes_i), the same bytes on both
  sides, so the difference is a sum of per-document terms d_i = (nll_A,i − nll_B,i) / (ln 2 · bytes);
- KL to dense: KL_A − KL_B = sum_i (kl_A,i − kl_B,i) / sum_i tokens_i (per token, as the pages show it).

Test: under H0 (the two models are exchangeable on every document) each d_i's sign can be flipped; the
two-sided p of |sum d_i| comes from `bench.stats.significance.adaptive_sign_flip_p` (exact for a few
documents, else seeded draws until the Holm decision cannot move). Interval: a seeded paired bootstrap
over documents (the same resampled documents for both models), percentile, unadjusted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.stats import ALPHA, ITERS, LEVEL, SEED
from bench.stats.significance import adaptive_sign_flip_p

METRICS = ("bits_per_byte", "kl_to_dense")


@dataclass
class DocumentComparison:
    """A − B on one per-document metric of one corpus, paired over its documents."""

    a: str
    b: str
    metric: str                 # bits_per_byte | kl_to_dense
    corpus: str
    estimate: float             # A − B of the aggregate (bits/byte, or nats/token)
    low: float
    high: float
    p: float
    n: int                      # documents
    p_holm: float = float("nan")

    @property
    def significant(self) -> bool:
        return self.p_holm < ALPHA

    def favours(self) -> str | None:
        """The arm with the significantly lower (better) value, or None."""
        if not self.significant or self.estimate == 0:
            return None
        return self.b if self.estimate > 0 else self.a


def per_document(rows: Sequence[Mapping[str, Any]], corpus: str) -> dict[int, Mapping[str, Any]]:
    """document index -> its stored sums, for one corpus of a cell's `fidelity.jsonl`."""
    return {int(r["document"]): r for r in rows if r.get("corpus") == corpus}


def terms(a: Mapping[int, Mapping[str, Any]], b: Mapping[int, Mapping[str, Any]], metric: str
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(per-document numerators of A, of B, shared denominators) on the documents both scored, or None
    when the two did not score the same text (different byte counts) or a side lacks the metric."""
    docs = sorted(set(a) & set(b))
    if not docs or any(a[i]["bytes"] != b[i]["bytes"] or a[i]["tokens"] != b[i]["tokens"] for i in docs):
        return None
    if metric == "bits_per_byte":
        num_a = np.array([a[i]["nll"] for i in docs], dtype=np.float64) / math.log(2)
        num_b = np.array([b[i]["nll"] for i in docs], dtype=np.float64) / math.log(2)
        den = np.array([a[i]["bytes"] for i in docs], dtype=np.float64)
    elif metric == "kl_to_dense":
        if any(a[i].get("kl") is None or b[i].get("kl") is None for i in docs):
            return None
        num_a = np.array([a[i]["kl"] for i in docs], dtype=np.float64)
        num_b = np.array([b[i]["kl"] for i in docs], dtype=np.float64)
        den = np.array([a[i]["tokens"] for i in docs], dtype=np.float64)
    else:
        raise ValueError(f"unknown document metric {metric!r}; one of {METRICS}")
    return num_a, num_b, den


def compare_documents(a: Mapping[int, Mapping[str, Any]], b: Mapping[int, Mapping[str, Any]], *, metric: str,
                      corpus: str, labels: tuple[str, str], family_size: int = 1, iters: int = ITERS,
                      seed: int = SEED) -> DocumentComparison | None:
    """A − B on `metric` over the documents both cells scored (None where they cannot be paired)."""
    t = terms(a, b, metric)
    if t is None:
        return None
    num_a, num_b, den = t
    total = den.sum()
    d = (num_a - num_b) / total
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d.size, size=(iters, d.size))
    boot = (num_a[idx].sum(axis=1) - num_b[idx].sum(axis=1)) / den[idx].sum(axis=1)
    tail = (1.0 - LEVEL) / 2.0
    low, high = np.quantile(boot, [tail, 1.0 - tail])
    p = adaptive_sign_flip_p(d, family_size=family_size, seed=seed)
    return DocumentComparison(labels[0], labels[1], metric, corpus, float(d.sum()), float(low), float(high), p,
                              int(d.size))
