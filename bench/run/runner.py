"""The matrix runner: validate a RunSpec, fetch what it needs, skip finished cells, run the rest.

The cells and their keys are `bench.run.cells`; computing one cell is `bench.run.session.ModelSession.run_cell`.
Locally, one session per model runs its cells in this process, each under a file lock so that concurrent
runners on one store never compute a cell twice; the Slurm executor (bench.run.slurm) runs one job per cell.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError
from bench.core.observer import Observer
from bench.core.record import failure
from bench.results.store import Store, check_location
from bench.run.cells import Cell, device_and_dtype, expand, run_may_train
from bench.run.config import RunSpec
from bench.run.session import ModelSession

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ validation


def validate(spec: RunSpec) -> None:
    """Check every name, budget and path against the registries and the disk before anything is loaded or
    written."""
    import methods
    from bench.data import tasks
    from bench.models import precheck

    check_location(spec.store)
    pruners = []
    for method in spec.method_params:
        methods.create(method.name, method.params_dict())  # unknown names and bad params raise here
    for method in spec.methods:
        pruners.append(methods.create(method.name, method.with_defaults(spec.method_params).params_dict()))
    for name, _ in spec.method_seeds:
        methods.get_class(name)  # an unknown name raises (a known method not in this run is ignored)
    if spec.eval.tasks:
        tasks.resolve(list(spec.eval.tasks))
    if spec.eval.perplexity:
        for corpus in spec.eval.perplexity.corpora:
            check_perplexity_corpus(corpus)
    needs_calibration = any(p.needs_calibration for p in pruners)
    for model in spec.models:  # budgets and windows against the model's own files, before it loads
        precheck.check_budgets(model.name, spec.ratios, spec.layers)
        if needs_calibration:
            precheck.check_seq_len(model.name, spec.calib.seq_len, "calib.seq_len")
    device_and_dtype(spec)  # an unknown device or dtype, or CUDA asked for but absent
    if spec.executor == "local":  # a Slurm job checks its own machine's GPUs
        from bench.models.offload import check_devices

        check_devices(spec.max_memory, spec.offload_folder)  # a GPU this machine lacks, an unwritable --offload-dir
    check_paths(spec, needs_calibration=needs_calibration, trains=run_may_train(spec))
    if spec.executor in ("slurm", "submitit-local"):
        from bench.run.slurm import check_reachable

        check_reachable(spec)


def check_perplexity_corpus(corpus: str) -> None:
    """A built-in perplexity corpus, or a readable UTF-8 text file."""
    from bench.core.textfile import read_text
    from bench.data import tasks

    path = Path(corpus).expanduser()
    if path.exists():
        read_text(path, "perplexity corpus", "--ppl")
    elif path.suffix or "/" in corpus:  # meant as a file
        raise BenchError(f"perplexity corpus file {corpus} does not exist",
                         f"give --ppl {', '.join(tasks.CORPORA)}, or the path of a UTF-8 text file")
    else:
        tasks.get_corpus(corpus)


def check_paths(spec: RunSpec, needs_calibration: bool, trains: bool) -> None:
    """The store is writable, the text files are readable, the cache can take what must be downloaded."""
    from bench.core.pathcheck import writable_folder
    from bench.core.paths import cache_root
    from bench.core.textfile import source_documents_or_builtin
    from bench.models import zoo

    writable_folder(spec.store, "--store")
    if needs_calibration:
        source_documents_or_builtin(spec.calib.source, "calibration text", "--calib",
                                    windows=(spec.calib.n_samples, spec.calib.seq_len))
    if trains:
        source_documents_or_builtin(spec.train.source, "training text", "train.source")
    if not all(zoo.is_cached(m.name) for m in spec.models):
        writable_folder(cache_root(), "the cache folder (--cache-dir)")


def prepare(spec: RunSpec, observer: Observer) -> None:
    """Download and convert what the run needs (models, data) before the store is touched."""
    from bench.data import fetch, loaders, tasks
    from bench.models import zoo

    sources = set()
    if spec.eval.tasks:
        sources.add(loaders.OLMO)
    corpora = list(spec.eval.perplexity.corpora) if spec.eval.perplexity else []
    if run_may_train(spec) or any(tasks.find_corpus(c) for c in [*corpora, spec.calib.source]):  # training text
        # is checked against the built-in corpora's evaluation heads, whatever its source
        sources.add(loaders.EXL)
    for source in sorted(sources):
        if not fetch.is_cached(source):
            with observer.stage(f"download {source}"):
                fetch.ensure(source)
    for model in spec.models:
        if not zoo.is_cached(model.name):
            with observer.stage(f"download {model.name}"):
                zoo.ensure_local(model.name)


# -------------------------------------------------------------------------------------------- running


@dataclass
class RunOutcome:
    cells: list[Cell]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> record (every cell)
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [r for r in self.records.values() if r.get("status") != "ok"]


def run(spec: RunSpec, observer: Observer | None = None) -> RunOutcome:
    """Validate, fetch, expand, then compute every unfinished cell with the spec's executor."""
    observer = observer or Observer()
    start = time.perf_counter()
    validate(spec)
    cells = expand(spec)
    prepare(spec, observer)
    store = Store(spec.store)
    outcome = RunOutcome(cells)
    started = dt.datetime.now(dt.UTC).isoformat()  # a cell finished after this by another process is skipped
    todo = []
    for cell in cells:
        if not spec.force and store.is_done(cell.key):
            outcome.skipped.append(cell.key)
        else:
            todo.append(cell)
    observer.expect(todo, stored_seconds(store, todo))
    observer.start(len(cells), len(todo))
    if todo:
        if spec.executor in ("slurm", "submitit-local"):
            from bench.run import slurm

            slurm.execute(spec, todo, store, observer)
            outcome.computed = [c.key for c in todo]
        else:
            outcome.computed = execute_local(spec, todo, store, observer, started=started)
        outcome.skipped += [c.key for c in todo if c.key not in outcome.computed]
    store.sync_index()
    store.write_view()
    outcome.records = {c.key: store.get(c.key) or _missing(c) for c in cells}
    outcome.seconds = time.perf_counter() - start
    return outcome


def stored_seconds(store: Store, cells: list[Cell]) -> dict[str, float]:
    """key -> seconds a stored cell like it took (for the ETA): the newest finished record of the same
    model, method and budget, else the mean of the same model's cells of its kind (dense or pruned)."""
    same: dict[tuple, float] = {}
    kind: dict[tuple, list[float]] = {}
    for record in store.records() if cells else []:
        seconds = (record.get("timings") or {}).get("total_s")
        info = record.get("cell") or {}
        if record.get("status") != "ok" or not isinstance(seconds, int | float):
            continue
        same[(info.get("model"), info.get("method"), str(info.get("budget")))] = seconds
        kind.setdefault((info.get("model"), info.get("kind") == "dense"), []).append(seconds)
    out = {}
    for c in cells:
        found = same.get((c.model, c.method, str(c.budget)))
        pool = kind.get((c.model, c.dense))
        if found is None and pool:
            found = sum(pool) / len(pool)
        if found is not None:
            out[c.key] = found
    return out


def _missing(cell: Cell) -> dict[str, Any]:
    return failure(cell.key, cell.info(), "Missing", "no record was written (the job died?)", "job", status="missing")


def execute_local(spec: RunSpec, todo: list[Cell], store: Store, observer: Observer, started: str) -> list[str]:
    """In-process: one session per model; a cell another process is computing is waited for at the end.
    Returns the keys this process computed."""
    from filelock import Timeout

    deferred, computed = [], []
    for model in dict.fromkeys(c.model for c in todo):
        with ModelSession(spec, model, store, observer) as session:
            for cell in (c for c in todo if c.model == model):
                lock = store.cell_lock(cell.key)
                try:
                    lock.acquire(timeout=0)
                except Timeout:  # another process holds it
                    deferred.append(cell)
                    observer.note(f"{cell.label}: being computed by another process; will wait for it")
                    continue
                try:
                    if _finished_since(store, cell.key, started):
                        observer.cell_skipped(cell, "finished by another process")
                        continue
                    session.run_cell(cell)
                    computed.append(cell.key)
                finally:
                    lock.release()
    for cell in deferred:
        with store.cell_lock(cell.key):
            if _finished_since(store, cell.key, started):
                observer.cell_skipped(cell, "finished by another process")
                continue
            with ModelSession(spec, cell.model, store, observer) as session:
                session.run_cell(cell)
            computed.append(cell.key)
    return computed


def _finished_since(store: Store, key: str, started: str) -> bool:
    record = store.get(key)
    return record is not None and record.get("status") == "ok" and (record.get("finished_at") or "") >= started
