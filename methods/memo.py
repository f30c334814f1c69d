"""Rounds of a greedy search kept for the next search that needs them (SLEB, BlockPruner, FinerCut).

A greedy search removes one unit per round, each round scoring every remaining candidate on the calibration
windows; the rounds of a larger budget begin with those of a smaller one, and a search that was stopped (a
machine's session ending in the middle of a plan of hours) begins again where it was. `search_memo` gives
the rounds already computed for a search (method, parameters, calibration windows, model weights), one entry
per round with its candidates and their scores (plain JSON); the search replays an entry whose candidates
match instead of computing the round, and adds every round it computes (`SearchMemo.add`).

Kept in the process on the Calibration object (the runner plans ratio 0.125 and then 0.25 of a method on the
same windows) and, where the runner gives the windows a folder (`Calibration.memo_dir`: the store's
`searches/`), in a JSON file per search, written atomically after every computed round, so a run that is
stopped and resumed loses at most the round it was in. The file's name is a hash of what determines the
search: the method and its parameters, the calibration tokens, and the model's parameter names, shapes,
dtypes and a strided sample of their values (a model whose weights live on the meta device, offloaded, gets
no file). In the process, an in-place change to any weight (its version counter) starts a new memo.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

SAMPLES_PER_TENSOR = 4096  # values of each parameter hashed into the file's name


class SearchMemo:
    """The computed rounds of one search (`rounds`, JSON-able dicts), saved to `path` when it has one."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self.rounds: list[dict[str, Any]] = []
        if path is not None and path.exists():
            try:
                self.rounds = json.loads(path.read_text(encoding="utf-8"))["rounds"]
                log.info("%d greedy-search round(s) read back from %s", len(self.rounds), path)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring an unreadable search memo %s (%s); its rounds are computed again", path, exc)
                self.rounds = []

    def __len__(self) -> int:
        return len(self.rounds)

    def get(self, index: int, candidates: list) -> dict[str, Any] | None:
        """Round `index` when it was computed with these candidates (None: compute it)."""
        if index < len(self.rounds) and self.rounds[index]["candidates"] == candidates:
            return self.rounds[index]
        return None

    def add(self, index: int, entry: dict[str, Any]) -> None:
        """Round `index` as computed (rounds after it, of another search path, are dropped); saved at once."""
        del self.rounds[index:]
        self.rounds.append(entry)
        if self.path is not None:
            from bench.core.atomic import write_text

            write_text(self.path, json.dumps({"rounds": self.rounds}) + "\n")


def _weights_digest(model) -> str | None:
    h = hashlib.sha256()
    for name, t in model.named_parameters():
        if t.device.type == "meta":
            return None
        flat = t.detach().reshape(-1)
        step = max(1, flat.numel() // SAMPLES_PER_TENSOR)
        sample = flat[::step].to("cpu", torch.float32).contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(sample.numpy().tobytes())
    return h.hexdigest()


def search_memo(calib, method: str, params: Any, model) -> SearchMemo:
    """The memo of `method`'s search with `params` on `calib`'s windows and `model`'s weights as they are now."""
    versions = tuple((name, t.data_ptr(), t._version) for name, t in model.named_parameters())
    key = ("greedy_search", method, repr(params), id(model), hash(versions))
    memos = calib.__dict__.setdefault("_search_memos", {})
    if key not in memos:
        path = None
        folder = getattr(calib, "memo_dir", None)
        digest = _weights_digest(model) if folder is not None else None
        if digest is not None:
            h = hashlib.sha256(f"{method}|{params!r}|{digest}|".encode())
            h.update(calib.windows.to("cpu").contiguous().numpy().tobytes())
            path = Path(folder) / f"{method}-{h.hexdigest()[:24]}.json"
        memos[key] = SearchMemo(path)
    return memos[key]


def replayed_cost(rounds: int, seconds: float) -> dict[str, Any]:
    """What a plan's cost says of rounds replayed from an earlier search (nothing when none were): how many,
    and the seconds they took when computed (the search's own seconds plus these: its cost on its own)."""
    if not rounds:
        return {}
    return {"replayed_rounds": rounds, "replayed_round_seconds": round(seconds, 3)}
