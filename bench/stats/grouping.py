"""Compact letter display: which methods the paired tests cannot tell apart, at a glance.

Given the arms ordered best first and which pairs differ significantly, every arm gets one or more
letters such that two arms share a letter exactly when the tests did not separate them, as far as one
letter set can say it: each letter names a maximal set of arms no two of which differ significantly (a
maximal clique of the "not separated" graph, Bron-Kerbosch), letters run a, b, c, ... from the set holding
the best arm. With significance from a Holm-adjusted family, a reader picks any method
carrying the first letter: the tests found nothing better.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence


def _maximal_cliques(nodes: list[str], joined: Callable[[str, str], bool]) -> list[frozenset[str]]:
    """Bron-Kerbosch with pivoting over the graph whose edges are `joined` pairs."""
    neighbours = {v: {u for u in nodes if u != v and joined(u, v)} for v in nodes}
    out: list[frozenset[str]] = []

    def expand(r: set[str], p: set[str], x: set[str]) -> None:
        if not p and not x:
            out.append(frozenset(r))
            return
        pivot = max(p | x, key=lambda u: len(neighbours[u] & p))
        for v in sorted(p - neighbours[pivot], key=nodes.index):
            expand(r | {v}, p & neighbours[v], x & neighbours[v])
            p = p - {v}
            x = x | {v}

    expand(set(), set(nodes), set())
    return out


def letters(arms: Sequence[str], separated: Callable[[str, str], bool]) -> dict[str, str]:
    """arm -> its letters; `arms` ordered best first; `separated(a, b)`: the tests tell a and b apart."""
    arms = list(arms)
    if not arms:
        return {}
    cliques = _maximal_cliques(arms, lambda u, v: not separated(u, v))
    # letters in the order of each set's best member, then of its size
    cliques.sort(key=lambda c: (min(arms.index(a) for a in c), -len(c), sorted(arms.index(a) for a in c)))
    alphabet = string.ascii_lowercase
    out = {a: "" for a in arms}
    for i, clique in enumerate(cliques):
        letter = alphabet[i] if i < len(alphabet) else f"[{i}]"
        for a in clique:
            out[a] += letter
    return out
