"""Boundary states kept on disk, so pruned cells of later runs start from them too (`bench run --engine-states
store`).

`BoundaryStates` lives as long as its process: a run that is stopped and resumed (the evidence run spans many
sessions) evaluates every pruned cell from the embeddings again, although the dense model's first layers are
the same in each. `DiskBoundaryStates` keeps the same states in a folder instead: one safetensors file per
boundary and row (`b<boundary>/<row key>.safetensors`, written atomically), within a byte budget on disk
(`max_bytes`, default 16 GiB or the environment's `BENCH_ENGINE_STATE_DISK_MB`; nothing is evicted). The
folder belongs to one dense model as run here (`states_folder`: weights, device type, dtype, package
versions and the engine's batch layout), so a row's state is the one this run would compute itself.

A row whose file cannot be read is scored from the embeddings: `batch` raises, and the engine's first batch
falls back to HFLM's path or a later batch fails the cell, which the next run computes again; the file is
removed so it does not fail twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from bench.evaluate.engine.states import BoundaryStates

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 16 << 30
SUFFIX = ".safetensors"


def default_max_bytes() -> int:
    value = os.environ.get("BENCH_ENGINE_STATE_DISK_MB")
    return int(float(value) * (1 << 20)) if value else DEFAULT_MAX_BYTES


def states_folder(root: Path, identity: dict) -> Path:
    """`root/<hash of identity>`, with the identity beside the states (identity.json) for a reader."""
    blob = json.dumps(identity, sort_keys=True, default=str)
    folder = Path(root) / hashlib.sha256(blob.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "identity.json"
    if not marker.exists():
        from bench.core.atomic import write_text

        write_text(marker, json.dumps(identity, indent=1, sort_keys=True, default=str) + "\n")
    return folder


class DiskBoundaryStates(BoundaryStates):
    """boundary -> row key -> hidden state, as files under `folder`; `layers` holds, per boundary, the set of
    row keys on disk (never the tensors), so BoundaryStates' `has` and `deepest` serve as they are."""

    def __init__(self, folder: Path, max_bytes: int | None = None):
        super().__init__(default_max_bytes() if max_bytes is None else max_bytes)
        self.folder = Path(folder)
        self.layers: dict[int, set[bytes]] = {}   # type: ignore[assignment]
        self.written: dict[int, list[bytes]] = {}   # by this process (what `discard` removes)
        for sub in sorted(self.folder.glob("b*")):
            if not sub.is_dir() or not sub.name[1:].isdigit():
                continue
            keys = set()
            for entry in os.scandir(sub):
                if entry.name.endswith(SUFFIX):
                    try:
                        keys.add(bytes.fromhex(entry.name[: -len(SUFFIX)]))
                    except ValueError:
                        continue
                    self.nbytes += entry.stat().st_size
            if keys:
                self.layers[int(sub.name[1:])] = keys
        if self.layers:
            log.info("%d stored boundary state(s) at boundaries %s in %s (%.1f GiB)",
                     sum(map(len, self.layers.values())), sorted(self.layers), self.folder, self.nbytes / (1 << 30))

    def _path(self, boundary: int, key: bytes) -> Path:
        return self.folder / f"b{boundary}" / f"{key.hex()}{SUFFIX}"

    def put(self, boundary: int, key: bytes, state: torch.Tensor) -> None:
        from safetensors.torch import save_file

        path = self._path(boundary, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file({"state": state.contiguous()}, str(tmp))
        os.replace(tmp, path)
        self.layers.setdefault(boundary, set()).add(key)
        self.written.setdefault(boundary, []).append(key)

    def discard(self, boundary: int) -> None:
        """Remove what this process wrote at `boundary` (and give its reserved bytes back)."""
        for key in self.written.pop(boundary, []):
            self._path(boundary, key).unlink(missing_ok=True)
            self.layers.get(boundary, set()).discard(key)
        if not self.layers.get(boundary):
            self.layers.pop(boundary, None)
        self.nbytes -= self.reserved.pop(boundary, 0)

    def rows(self, boundary: int, keys: Sequence[bytes]) -> list[torch.Tensor]:
        from safetensors.torch import load_file

        out = []
        for key in keys:
            path = self._path(boundary, key)
            try:
                out.append(load_file(str(path))["state"])
            except Exception as exc:  # noqa: BLE001 - a damaged or vanished file (safetensors raises its own type)
                path.unlink(missing_ok=True)
                self.layers.get(boundary, set()).discard(key)
                raise RuntimeError(f"unreadable boundary state {path} ({exc}); removed, so the next run "
                                   "computes that row from the embeddings") from exc
        return out
