"""Selection rules shared by the similarity-based methods, over bench.data.calibration.BoundaryStats matrices."""

from __future__ import annotations

import math

import torch


def lowest_k(scores: list[float], k: int) -> list[int]:
    """Indices of the k lowest scores (ties broken by lower index), sorted."""
    order = sorted(range(len(scores)), key=lambda i: (scores[i], i))
    return sorted(order[:k])


def window_scores(cos: torch.Tensor, n: int) -> list[float]:
    """cos(h_l, h_{l+n}) for every start l in 0..L-n (L+1 boundaries)."""
    n_boundaries = cos.shape[0]
    return [float(cos[s, s + n]) for s in range(n_boundaries - n)]


def angular(c: float) -> float:
    """(1/pi) arccos(c), clamped: the angular distance of Gromov et al."""
    return math.acos(max(-1.0, min(1.0, c))) / math.pi


def best_start(scores: list[float], highest: bool) -> int:
    """The start with the highest (or lowest) score; ties broken by the lower index."""
    key = (lambda i: (-scores[i], i)) if highest else (lambda i: (scores[i], i))
    return min(range(len(scores)), key=key)


def block_influence(cos: torch.Tensor) -> list[float]:
    """ShortGPT's BI_i = 1 - E cos(h_i, h_{i+1}) for every layer i."""
    return [1.0 - float(cos[i, i + 1]) for i in range(cos.shape[0] - 1)]
