"""Measured cost of a pruning or training phase: wall seconds, tokens, optimizer steps, FLOPs, peak memory.

`CostMeter` is a context manager. Inside it, callers count work with `add(tokens=, steps=, flops=)`;
on exit it holds the wall time and the phase's peak memory:

- CUDA: `torch.cuda.max_memory_allocated` after resetting the peak at entry (tensors only, this device).
- CPU: the process's resident set size, sampled from /proc/self/statm by a background thread (every
  `interval` seconds) and at every `add` call. `resource.getrusage().ru_maxrss` is monotonic for the whole
  process, so it cannot give the peak of a later phase; it is only the fallback where /proc is missing
  (then `memory_source` says so). The CPU figure includes everything resident (model, tokenizer, Python),
  `memory_start_bytes` is the level at entry, so `peak - start` is what the phase added.

FLOPs are an estimate the caller supplies (see `bench.train.flops_per_token`): matmul parameters only.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from typing import Any

import torch

from bench.core.device import is_cuda

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss() -> int | None:
    """Resident bytes of this process now, or None where /proc/self/statm does not exist."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def max_rss() -> int:
    """The process's lifetime peak RSS in bytes (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


class CostMeter:
    """Measure one phase on `device` (a torch.device or string). Use as `with CostMeter(dev) as m: ...`."""

    def __init__(self, device: torch.device | str = "cpu", interval: float = 0.01):
        self.device = torch.device(device)
        self.interval = interval
        self.tokens = 0
        self.steps = 0
        self.flops = 0.0
        self.wall_seconds = 0.0
        self.peak_bytes: int | None = None
        self.start_bytes: int | None = None
        self.source = ""
        self._t0 = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ phases

    def __enter__(self) -> CostMeter:
        if is_cuda(self.device):
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start_bytes = torch.cuda.memory_allocated(self.device)
            self.source = "torch.cuda.max_memory_allocated"
        else:
            rss = current_rss()
            if rss is None:
                self.start_bytes = max_rss()
                self.source = "ru_maxrss (process lifetime peak)"
            else:
                self.start_bytes = self.peak_bytes = rss
                self.source = "rss sampled from /proc/self/statm"
                self._stop.clear()
                self._thread = threading.Thread(target=self._sample_loop, name="cost-meter-rss", daemon=True)
                self._thread.start()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if is_cuda(self.device):
            torch.cuda.synchronize(self.device)
        self.wall_seconds = time.perf_counter() - self._t0
        if is_cuda(self.device):
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
        elif self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self.sample()
        else:
            self.peak_bytes = max_rss()

    # ------------------------------------------------------------------------------------------ counting

    def add(self, tokens: int = 0, steps: int = 0, flops: float = 0.0) -> None:
        self.tokens += int(tokens)
        self.steps += int(steps)
        self.flops += float(flops)
        if not is_cuda(self.device):
            self.sample()

    def sample(self) -> None:
        rss = current_rss()
        if rss is not None:
            with self._lock:
                self.peak_bytes = rss if self.peak_bytes is None else max(self.peak_bytes, rss)

    def _sample_loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def result(self) -> dict[str, Any]:
        """Plain data for a plan's `cost` (JSON)."""
        return {"device": str(self.device), "wall_seconds": round(self.wall_seconds, 3), "tokens": self.tokens,
                "steps": self.steps, "flops": self.flops, "peak_memory_bytes": self.peak_bytes,
                "memory_start_bytes": self.start_bytes, "memory_source": self.source}
