"""Recompute every pruned cell's stability in a store from the per-sample records it already holds.

Stability used to be computed with the spread of raw perplexities and correctness by `acc`; records
written then carry per-task values of exactly 0 or 1. This rewrites each pruned record's `stability`
with `bench.evaluate.answer_agreement`'s current definition (per-choice NLL spread, each task's headline metric,
agreement, effective sample size, interval) against the dense cell of the same model and settings. It is
deterministic (the interval is seeded) and touches nothing else in a record but `stability`.

    python -m bench.results.recompute reports/store
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def samples_of(store, key: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in store.read_artifact(key, "samples.jsonl") or []:
        row = dict(row)
        out.setdefault(row.pop("task"), []).append(row)
    return out


def recompute_stability(root: str | Path) -> int:
    """Rewrite the `stability` of every finished pruned cell that has per-sample records and a dense cell
    under the same settings; returns the number of records rewritten."""
    from bench.evaluate.answer_agreement import is_multiple_choice, stability
    from bench.metrics import load_record
    from bench.results.rows import canonical, settings
    from bench.results.store import Store

    store = Store(root)
    records = [load_record(r) for r in store.records()]
    records = [r for r in records if r.ok]
    dense = {(r.cell.model, canonical(settings(r))): r for r in records if r.dense}
    changed = 0
    for r in records:
        if r.dense or r.stability is None:
            continue
        ref = dense.get((r.cell.model, canonical(settings(r))))
        if ref is None:
            log.warning("%s: no dense cell under the same settings; stability left as it is", r.key)
            continue
        d, p = samples_of(store, ref.key), samples_of(store, r.key)
        metrics = {t: s.metric or "acc" for t, s in (ref.accuracy.tasks if ref.accuracy else {}).items()}
        if not any(is_multiple_choice(v) for v in d.values()) or not p:
            continue
        raw = r.to_dict()
        raw["stability"] = stability(d, p, metric=metrics).to_dict()
        store.put(r.key, raw)
        changed += 1
    store.write_view()
    return changed


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.results.recompute", description=__doc__.splitlines()[0],
                                     allow_abbrev=False)
    parser.add_argument("store", help="the result store whose pruned records get their stability recomputed")
    store = parser.parse_args(argv).store  # a wrong call: argparse's usage line and exit 2
    log.info("stability recomputed for %d record(s) in %s", recompute_stability(store), store)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    raise SystemExit(main())
