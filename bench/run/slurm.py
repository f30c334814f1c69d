"""The Slurm executor: each cell is one submitit job that writes its own record into the shared store.

The dense cells go first (one job per model) and are waited for, since every pruned cell reads its
model's dense per-sample records (stability) and latency (speed-up) from the store; then every pruned
cell is submitted as one job array (`slurm_array_parallelism` caps how many run at once). A job gets
the spec, the cell and its key (small, picklable), loads the model itself and runs the same
`ModelSession.run_cell` as the in-process executor. A job that dies without writing a record (time
limit, node failure, OOM kill) is recorded as failed here, from submitit's error.

The store and submitit's folder must be on a filesystem every node shares. `--executor slurm` refuses
to start when no Slurm is reachable (no `sbatch` on PATH, or `sinfo` cannot reach the controller)
rather than letting submitit fall back to local jobs. `--executor submitit-local` (or `slurm.cluster:
local`) runs the jobs as local subprocesses through submitit's LocalExecutor (the tests do); `slurm.cluster:
debug` runs them in this process.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.core.errors import ConfigError
from bench.core.observer import LogObserver, Observer
from bench.results.store import Store
from bench.run.config import RunSpec

log = logging.getLogger(__name__)

POLL_S = 2.0


def cluster_of(spec: RunSpec) -> str:
    """submitit's executor name: slurm, or local/debug (`--executor submitit-local`, `slurm.cluster`)."""
    if spec.executor == "submitit-local":
        return "local"
    return spec.slurm.cluster or "slurm"


def check_reachable(spec: RunSpec) -> None:
    """Refuse `--executor slurm` where no Slurm answers (submitit would silently run the jobs here)."""
    if cluster_of(spec) != "slurm":
        return
    alternatives = "use --executor local (in this process) or --executor submitit-local (a subprocess per cell)"
    if shutil.which("sbatch") is None:
        raise ConfigError("--executor slurm needs Slurm, and no `sbatch` is on PATH",
                          f"run from a Slurm login node, or {alternatives}")
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=30)
        problem = None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["no answer"])[-1]
    except (OSError, subprocess.SubprocessError) as exc:
        problem = str(exc)
    if problem:
        raise ConfigError(f"--executor slurm cannot reach the Slurm controller (sinfo: {problem[:200]})",
                          f"check the cluster, or {alternatives}")


def make_executor(spec: RunSpec, store: Store):
    import submitit

    folder = Path(spec.slurm.folder).expanduser() if spec.slurm.folder else store.root / ".submitit"
    cluster = cluster_of(spec)
    # Slurm substitutes %j per job; the local executors would make a folder literally named %j
    executor = submitit.AutoExecutor(folder=str(folder / "%j" if cluster == "slurm" else folder), cluster=cluster)
    params: dict[str, Any] = {
        "name": "bench-cell", "timeout_min": spec.slurm.time_min, "gpus_per_node": spec.slurm.gpus_per_cell,
        "cpus_per_task": spec.slurm.cpus_per_cell, "mem_gb": spec.slurm.mem_gb, "tasks_per_node": 1,
        "nodes": 1, "slurm_array_parallelism": spec.slurm.array_parallelism,
    }
    if spec.slurm.partition:
        params["slurm_partition"] = spec.slurm.partition
    executor.update_parameters(**params)
    return executor


def run_job(spec: RunSpec, cell, store_root: str) -> dict[str, Any]:
    """The body of one job: compute `cell` into the store; returns its index line."""
    import submitit

    from bench.results.store import index_line
    from bench.run.session import ModelSession

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if spec.include_path:  # the job's process registers the run's include-path plug-ins itself
        from bench.run import plugins

        plugins.load(spec.include_path)
    store = Store(store_root)
    job_id = submitit.JobEnvironment().job_id
    with ModelSession(spec, cell.model, store, LogObserver(), executor=spec.executor, job_id=job_id) as session, \
            store.cell_lock(cell.key):
        record = session.run_cell(cell)
    return index_line(record)


def execute(spec: RunSpec, todo: list, store: Store, observer: Observer) -> None:
    """Submit the dense wave, wait, then the pruned wave, and wait; record jobs that died."""
    spec = dataclasses.replace(spec, store=str(store.root))  # jobs may start in another directory
    executor = make_executor(spec, store)
    for wave in ([c for c in todo if c.dense], [c for c in todo if not c.dense]):
        if not wave:
            continue
        since = dt.datetime.now(dt.UTC).isoformat()
        with executor.batch():
            jobs = [executor.submit(run_job, spec, cell, str(store.root)) for cell in wave]
        for cell, job in zip(wave, jobs, strict=True):
            observer.note(f"submitted {cell.label} as job {job.job_id}")
        _wait(list(zip(wave, jobs, strict=True)), store, observer, since)


def _wait(pending: list, store: Store, observer: Observer, since: str) -> None:
    while pending:
        still = []
        for cell, job in pending:
            if not job.done():
                still.append((cell, job))
                continue
            exc = job.exception()
            record = store.get(cell.key)
            if exc is not None and (record is None or (record.get("finished_at") or "") < since):
                record = _died(cell, job, exc)
                store.put(cell.key, record)
            observer.cell_done(cell, record or {"status": "missing"})
        pending = still
        if pending:
            time.sleep(POLL_S)


def _died(cell, job, exc: BaseException) -> dict[str, Any]:
    from bench.core.record import failure

    message = str(exc).strip().splitlines()[-1][:500] if str(exc) else type(exc).__name__
    return failure(cell.key, cell.info(), type(exc).__name__, message, "job", job_id=job.job_id,
                   provenance={"executor": "slurm", "slurm_job_id": job.job_id})
