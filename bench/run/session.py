"""One dense model in memory and what its cells share; computing one cell into a typed record.

A `ModelSession` loads each dense model once, builds one `Calibration` per calibration seed (captured
once, shared by every scorer) and the training data once, and computes cells: prune a copy (at most one
pruned variant lives beside the dense model), then run every enabled evaluator (bench.metrics) in order,
each returning its typed part of the `CellRecord`. The dense cell of a model is computed (or read back
from the store) before any pruned cell that needs it as a reference (stability, speed-up, deltas). A
failing cell is recorded with its error and the matrix goes on. The local runner and the Slurm executor
(bench.run.slurm) both call `ModelSession.run_cell`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import logging
import time
import traceback
from typing import Any

from bench.core.errors import BenchError
from bench.core.observer import Observer
from bench.core.record import CellError, CellInfo, CellRecord, ModelInfo, PruningInfo
from bench.metrics import EvalContext, Outcome, evaluators, load_record
from bench.results.store import Store
from bench.run.cells import Cell, calib_spec, dense_cell, expand, pruned_model_identity
from bench.run.config import RunSpec

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Pruned:
    """A pruned copy of the dense model and what pruning it did."""

    model: Any
    info: PruningInfo
    plan: dict[str, Any]
    trained: bytes | None = None  # bench.run.pipeline.TRAINED: what replaying the plan does not give


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
        self.reference: dict[str, Outcome] | None = None  # the dense cell's outcomes, by evaluator
        self.dense_key = dense_cell(spec, model).key
        self.states = None  # the dense model's boundary states for the evaluation engine (bounded in bytes)
        self.twins: dict[str, str] | None = None  # pruned-model identity -> the key of a cell that evaluated it

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.model = self.tokenizer = self.states = None
        self.calibs.clear()
        _free()

    def _load(self):
        if self.model is None and self.load_error is None:
            from bench.models import zoo

            start = time.perf_counter()
            try:
                with self.observer.stage("load"):
                    self.model, self.tokenizer = zoo.load(self.name, device=self.spec.device, dtype=self.spec.dtype,
                                                         max_memory=self.spec.max_memory,
                                                         offload_folder=self.spec.offload_folder)
            except Exception as exc:  # recorded in every cell of this model
                self.load_error = exc
            self.load_seconds = time.perf_counter() - start
        if self.load_error is not None:
            raise self.load_error
        return self.model, self.tokenizer

    # ------------------------------------------------------------------------------------------- cells

    def run_cell(self, cell: Cell) -> dict[str, Any]:
        """Compute one cell (after its model's dense reference) and store its record; returns the record as
        stored. A failure is recorded, not raised."""
        if not cell.dense and self.reference is None:
            self.reference = self._dense_reference()
        computed = self._compute(cell)
        if cell.dense:
            self.reference = computed.reference
        return computed.stored

    def _compute(self, cell: Cell) -> _Computed:
        self.observer.cell_start(cell)
        record = CellRecord(key=cell.key, cell=CellInfo.from_dict(cell.info()),
                            started_at=dt.datetime.now(dt.UTC).isoformat())
        ctx = EvalContext(spec=self.spec, cell=cell, model=None, tokenizer=None, dense_model=None,
                          observer=self.observer, reference=None if cell.dense else self.reference, current="load")
        artifacts: dict[str, Any] = {}
        t0 = time.perf_counter()
        try:
            model, tok = self._load()
            record.model = self._model_info(model)
            ctx.model, ctx.tokenizer, ctx.dense_model = model, tok, model
            twin = None
            if not cell.dense:
                pruned = self._prune(cell, ctx)
                record.pruning, ctx.model = pruned.info, pruned.model
                artifacts["plan.json"] = pruned.plan
                record.pruning.model_identity = pruned_model_identity(pruned.plan)
                twin = self._evaluated_twin(record.pruning.model_identity, cell.key)
                if pruned.trained is not None:
                    from bench.run.pipeline import TRAINED

                    artifacts[TRAINED] = pruned.trained
                del pruned
            if twin is not None:  # an identical model was evaluated already: its evaluation is this cell's
                ctx.current = "shared evaluation"
                self._share_evaluation(twin, record, artifacts)
            else:
                ctx.reuse = self._reuse(cell, ctx.model, record.pruning)
                for ev in evaluators():
                    if ev.enabled(self.spec):
                        ctx.current = ev.name
                        outcome = ev.evaluate(ctx)
                        ctx.results[ev.name] = outcome
                        record.parts[ev.name] = outcome.part
                        artifacts.update(outcome.artifacts)
            record.status = "ok"
            if record.pruning is not None and record.pruning.model_identity and self.twins is not None:
                self.twins.setdefault(record.pruning.model_identity, record.pruning.evaluation_from or cell.key)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # OOM, NaN loss, unsupported architecture, ...: isolate the cell
            record.status = "failed"
            record.error = CellError(type=type(exc).__name__, message=str(exc), stage=ctx.current,
                                     user_error=isinstance(exc, BenchError),
                                     traceback=traceback.format_exc(limit=-12))
            log.warning("%s failed during %s: %s: %s", cell.label, ctx.current, type(exc).__name__, exc)
        finally:
            ctx.model = None
            _free()
        from bench.run.provenance import cell_provenance

        ctx.timings["total_s"] = time.perf_counter() - t0
        record.timings = ctx.timings
        record.provenance = cell_provenance(self.spec, cell, self.model, executor=self.executor,
                                            job_id=self.job_id, load_seconds=self.load_seconds)
        record.finished_at = dt.datetime.now(dt.UTC).isoformat()
        record.files = sorted([*artifacts, "record.json"])
        artifacts["timings.json"] = ctx.timings
        stored = record.to_dict()
        self.store.put(cell.key, stored, artifacts)
        self.observer.cell_done(cell, stored)
        return _Computed(record, stored, dict(ctx.results))

    # ------------------------------------------------------------------------------ shared evaluations

    def _evaluated_twin(self, identity: str | None, own_key: str = "") -> str | None:
        """The key of a finished cell of this run (same model, same evaluation spec) whose pruned model is
        identical to one with `identity` (bench.run.cells.pruned_model_identity), or None. With `--force` only
        cells computed by this session count."""
        if identity is None:
            return None
        if self.twins is None:
            self.twins = {}
            if not self.spec.force:
                for cell in expand(self.spec):
                    if cell.model != self.name or cell.dense:
                        continue
                    raw = self.store.get(cell.key)
                    pruning = (raw or {}).get("pruning") or {}
                    if raw and pruning.get("model_identity") and self.store.is_done(cell.key):
                        self.twins.setdefault(pruning["model_identity"], pruning.get("evaluation_from") or cell.key)
        key = self.twins.get(identity)
        if key is None or key == own_key or not self.store.is_done(key):   # never itself, never a damaged cell
            return None
        return key

    def _share_evaluation(self, key: str, record: CellRecord, artifacts: dict[str, Any]) -> None:
        """Copy the evaluation of cell `key` (its parts and their files, byte for byte) into `record`, which
        states where they come from (`pruning.evaluation_from`)."""
        raw = self.store.get(key)
        source = load_record(raw)
        record.parts.update(source.parts)
        for name in source.files:
            if name not in ("record.json", "plan.json", "timings.json", "trained.safetensors"):
                artifacts[name] = (self.store.cell_dir(key) / name).read_bytes()
        record.pruning.evaluation_from = key
        log.info("%s: the pruned model equals that of cell %s (same operations on the same dense model); "
                 "its evaluation is shared", record.cell.label, key)

    def _model_info(self, model) -> ModelInfo:
        from bench.models import arch, zoo

        return ModelInfo(name=self.name, source=zoo.resolve(self.name).provenance(), n_layers=arch.num_layers(model),
                         params_total=arch.count_parameters(model))

    def _calibration(self, seed: int):
        if seed not in self.calibs:
            from bench.data.calibration import Calibration
            from bench.results.store import SEARCHES

            calib = Calibration(calib_spec(self.spec, seed), self.model, self.tokenizer)
            calib.memo_dir = self.store.root / SEARCHES  # greedy searches resume across runs (methods.memo)
            self.calibs[seed] = calib
        return self.calibs[seed]

    def _training_data(self):
        """The training text for methods that train, built once per session (disjoint from calibration and
        evaluation text by construction: `bench.data.splits`)."""
        if self.train_data is None:
            from bench.data.training_text import TrainData, TrainDataSpec

            self.train_data = TrainData(TrainDataSpec(**dataclasses.asdict(self.spec.train)), self.tokenizer)
        return self.train_data

    def _prune(self, cell: Cell, ctx: EvalContext) -> Pruned:
        import methods
        from bench.models import arch
        from bench.run.pipeline import prune, trained_bytes
        from methods.base import Budget

        pruner = methods.create(cell.method, dict(cell.params))
        heal_data = None
        if pruner.trains:
            ctx.current = "training data"
            heal_data = self._training_data()
        calib = None
        if pruner.needs_calibration:
            ctx.current = "calibration"
            calib = self._calibration(cell.seed)
            if "stats" not in calib.__dict__:  # captured once per (model, calibration spec)
                with ctx.stage("calibration", "calibration_s"):
                    calib.stats  # noqa: B018 - the cached property computes the capture
        with ctx.stage("pruning + training" if pruner.trains else "pruning", "prune_s"):
            result = prune(self.model, pruner, Budget(layers=cell.layers, ratio=cell.ratio), calib, copy_model=True,
                           heal_data=heal_data)
        info = PruningInfo.from_plan(result.plan, arch.num_layers(result.model), result.seconds, result.heal_cost,
                                     heal_data.describe() if heal_data is not None else None)
        if self.spec.eval.engine == "prefix":
            from bench.evaluate.engine import first_changed_layer, shared_prefix

            info.first_changed_layer = first_changed_layer(result.plan)
            info.shared_layers = shared_prefix(self.model, result.model, info.first_changed_layer)
        return Pruned(result.model, info, result.plan.to_dict(), trained_bytes(self.model, result.model, result.plan))

    def _reuse(self, cell: Cell, model, pruning: PruningInfo | None):
        """What the evaluation engine may reuse: the dense cell stores boundary states (a quarter of the
        budget per task, coarse to fine; a sixteenth on disk); a pruned cell starts from the deepest stored
        boundary within the layers it shares with the dense model (`shared_layers`) and stores that boundary
        for later cells (on disk, `--engine-states store`, also the two coarsest boundaries below it)."""
        if self.spec.eval.engine != "prefix":
            return None
        from bench.evaluate.engine import BoundaryStates, Reuse, bisection_order
        from bench.models import arch

        on_disk = self.spec.engine_states == "store"
        if self.states is None:
            self.states = self._new_states() if on_disk else BoundaryStates()
        if cell.dense:
            n = arch.num_layers(model)
            # on disk, a sixteenth of the budget per task: the pruned cells' own boundaries need the rest
            return Reuse(self.states, n, tuple(bisection_order(n)), share=0.0625 if on_disk else 0.25)
        shared = (pruning.shared_layers if pruning is not None else None) or 0
        record = (shared,) if shared else ()
        if shared and on_disk:
            # kept for later runs too: also the two coarsest boundaries below it, for cells that share less
            record += tuple(b for b in bisection_order(arch.num_layers(self.model)) if b < shared)[:2]
        return Reuse(self.states, shared, record)

    def _new_states(self):
        """The store's states of this dense model as this run computes them (`--engine-states store`)."""
        from bench.evaluate.engine import lm
        from bench.evaluate.engine.disk_states import DiskBoundaryStates, states_folder
        from bench.results.store import STATES
        from bench.run.cells import device_and_dtype, key_versions, model_fingerprint

        device, dtype = device_and_dtype(self.spec)
        identity = {"weights": model_fingerprint(self.name), "device": device, "dtype": dtype,
                    "versions": key_versions(), "batch_size": self.spec.eval.batch_size,
                    "layout": {"max_row_tokens": lm.MAX_ROW_TOKENS, "max_batch_tokens": lm.MAX_BATCH_TOKENS,
                               "max_batch_attention": lm.MAX_BATCH_ATTENTION}}
        return DiskBoundaryStates(states_folder(self.store.root / STATES, identity))

    def _dense_reference(self) -> dict[str, Outcome]:
        """The dense cell's outcomes for the pruned cells: read back from the store, else computed now,
        before them (waiting first if another process holds the dense cell)."""
        with self.store.cell_lock(self.dense_key):
            raw = self.store.get(self.dense_key)
            if raw is None:
                return self._compute(dense_cell(self.spec, self.name)).reference
        record = load_record(raw)
        if not record.ok:
            return {}
        out = {}
        try:
            for ev in evaluators():
                outcome = ev.reference(self.store, self.dense_key, record)
                if outcome is not None:
                    out[ev.name] = outcome
        except (OSError, ValueError) as exc:  # a damaged artifact (hand-edited, a truncated copy): heal it
            log.warning("the dense cell %s has an unreadable file (%s); computing it again", self.dense_key, exc)
            with self.store.cell_lock(self.dense_key):
                return self._compute(dense_cell(self.spec, self.name)).reference
        return out


@dataclasses.dataclass
class _Computed:
    record: CellRecord
    stored: dict[str, Any]  # the record as written
    outcomes: dict[str, Outcome]

    @property
    def reference(self) -> dict[str, Outcome]:
        """What pruned cells compare with, when this is a dense cell (nothing when it failed)."""
        return self.outcomes if self.record.ok else {}


def _free() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass
