"""What pruning cost, read from the record's `pruning` part (no evaluator): prune seconds (calibration
capture + scoring + surgery) and training seconds. Leaderboard columns only (not compared by regress)."""

from __future__ import annotations

from bench.metrics import Column, Measure, Metric, metric


def _reader(attr: str):
    return lambda record: Measure.named(attr, _cost(record, attr))


def _cost(record, attr: str) -> float | None:
    if record.pruning is None or record.dense:
        return None
    return record.pruning.train_s if attr == "train_s" else record.pruning.prune_s


metric(Metric(name="prune_s", title="Prune seconds", unit="s", direction="lower", uncertainty="none",
              read=_reader("prune_s"), progress=lambda r: [], order=50,
              columns=lambda group: [Column("Prune s", lambda g, r: (r.prune_s, None))]))
metric(Metric(name="train_s", title="Train seconds", unit="s", direction="lower", uncertainty="none",
              read=_reader("train_s"), progress=lambda r: [], order=60,
              columns=lambda group: [Column("Train s", lambda g, r: (r.train_s, None))]))
