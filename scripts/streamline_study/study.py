"""The study's runner: `Study` loads the model, the calibration, the training and evaluation text once, works
through `design.jobs()` (each point written once, atomically, and skipped when present) and runs the accuracy
jobs; the trained runs are `train.run_training`, from the dense states of `teacher.TeacherCache`."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import logging
import time
from pathlib import Path

import torch

import methods
from bench.core.atomic import write_json
from bench.data import splits
from bench.data.calibration import Calibration
from bench.evaluate.bits_per_byte import DenseReference, evaluate_fidelity, prepare_text
from bench.models import arch, zoo
from bench.run.pipeline import prune
from methods.base import Budget
from scripts.streamline_study import design
from scripts.streamline_study.teacher import TeacherCache
from scripts.streamline_study.train import run_training

log = logging.getLogger("streamline_study")



def study_fidelity(fid) -> dict:
    """A FidelityResult as the study's records keep it (reports/streamline-study, read by `points`): the
    text's `label`, `kl`, every document's sums and the identity."""
    return {"label": fid.corpus, "documents": fid.documents, "bytes": fid.bytes, "tokens": fid.tokens,
            "windows": fid.windows, "window": fid.window, "prefix": fid.prefix, "nll": fid.nll,
            "bits_per_byte": fid.bits_per_byte, "kl": fid.kl_to_dense, "top1_agreement": fid.top1_agreement,
            "wall_s": fid.wall_s, "per_document": [dataclasses.asdict(d) for d in fid.per_document],
            "identity": fid.identity}

class Study:
    def __init__(self, out: Path, cache: Path, deadline: dt.datetime | None):
        self.out, self.cache, self.deadline = out, cache, deadline
        for sub in ("points", "accuracy"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        (cache / "modules").mkdir(parents=True, exist_ok=True)
        self.model, self.tok = zoo.load("smollm2-135m")
        self.model.requires_grad_(False)
        self.calib = Calibration(design.CALIB, self.model, self.tok)
        self._calibration_stats()
        from bench.data.training_text import TrainData, TrainDataSpec

        self.data = TrainData(TrainDataSpec(source="c4"), self.tok)
        docs = [d for d in splits.documents("c4", "evaluation") if len(d.encode("utf-8")) <= design.EVAL_DOC_BYTES]
        self.text = prepare_text(self.tok, docs, label="C4-sample evaluation range", window=1024,
                                 max_bytes=design.EVAL_BYTES)
        self.reference: DenseReference | None = None
        self.budget = Budget(layers=design.LAYERS)
        self.teacher = TeacherCache(self, cache)

    # ------------------------------------------------------------------------------------------- store

    def path(self, point: str) -> Path:
        return self.out / "points" / f"{point}.json"

    def done(self) -> dict[str, dict]:
        return {p.stem: json.loads(p.read_text()) for p in sorted((self.out / "points").glob("*.json"))}

    def left(self) -> float:
        return float("inf") if self.deadline is None else (self.deadline - dt.datetime.now(dt.UTC)).total_seconds()

    def run(self) -> None:
        for job in design.jobs():
            if (self.out / "STOP").exists():
                log.info("STOP file found: exiting between jobs")
                return
            job = self.resolve(job)
            if job is None:
                continue
            if job["kind"] == "accuracy":
                self.accuracy(job["of"])
                continue
            if job["kind"] == "train":
                run_training(self, job)
                continue
            if self.path(job["name"]).exists():
                continue
            estimate = job.get("estimate_s", 120)
            if estimate > self.left():
                log.info("skipping %s: about %.0f s, %.0f s left before the deadline", job["name"], estimate, self.left())
                continue
            log.info("job %s", job["name"])
            write_json(self.path(job["name"]), self.untrained_point(job))

    def resolve(self, job: dict) -> dict | None:
        done = self.done()
        best = design.best_objective(done)
        if job["kind"] == "accuracy" and job["of"].startswith("best-"):
            if best is None:
                return None
            tokens = [r["point"]["tokens"] for r in done.values() if r["point"]["kind"] == "train"
                      and r["point"]["objective"] == best and r["point"]["replacement"] == "layer"
                      and r["point"]["seed"] == 0]
            return {"kind": "accuracy", "of": design.name("layer", best, min(tokens) if job["of"] == "best-first" else max(tokens), 0)}
        if job["kind"] != "best":
            return job
        return None if best is None else design.best_run(job["what"], best)

    # ---------------------------------------------------------------------------------------- points

    def base_record(self, point: dict) -> dict:
        return {"point": point, "model": "smollm2-135m", "dtype": str(next(self.model.parameters()).dtype),
                "budget": self.budget.to_dict(), "calibration": self.calib.describe(),
                "evaluation_text": {**self.text.describe(),
                                    "document_range": list(splits.split("c4").evaluation)}}

    def untrained_point(self, job: dict) -> dict:
        t0 = time.perf_counter()
        record = self.base_record(job)
        model, plan, heal = self.build(job)
        if plan is not None:
            record.update(self.plan_fields(plan))
        if heal:
            record.update(training=heal, training_data=self.data.describe())
            self.save_module(job["name"], model, plan)
        record["fidelity"] = self.fidelity(model, job["name"])
        record["wall_s"] = time.perf_counter() - t0
        return record

    def build(self, job: dict):
        """(model, plan, heal cost) of a dense / baseline / default job (deterministic, so rebuilt for accuracy)."""
        if job["kind"] == "dense":
            return self.model, None, None
        if job["kind"] == "baseline":
            result = prune(self.model, methods.create(job["method"], job["params"]), self.budget, self.calib)
            return result.model, result.plan, None
        pruner = methods.create("streamline", {"train_seed": job["seed"]})
        result = prune(self.model, pruner, self.budget, self.calib, copy_model=True, heal_data=self.data)
        return result.model, result.plan, result.heal_cost

    @staticmethod
    def plan_fields(plan) -> dict:
        return {"removed": plan.removed_original, "ops": plan.ops, "layers_removed": plan.layers_removed,
                "param_ratio": plan.param_ratio, "plan_cost": plan.cost.get("pruning")}

    def fidelity(self, model, label: str) -> dict:
        if self.reference is None:
            self.reference = self._reference()
        fid = evaluate_fidelity(model, self.text, dense=self.reference, batch_size=4)
        log.info("%s: %.4f bits/byte, KL %.4f, top-1 %.3f", label, fid.bits_per_byte, fid.kl_to_dense,
                 fid.top1_agreement)
        return study_fidelity(fid)

    def _reference(self) -> DenseReference:
        """The dense reference, kept in the cache folder across restarts (keyed by the text's tokens)."""
        import hashlib

        key = hashlib.sha1(repr(self.text.windows).encode()).hexdigest()[:12]
        path = self.cache / f"reference-{key}.pt"
        if path.exists():
            ref = DenseReference.__new__(DenseReference)
            ref.text = self.text
            ref.scorer, ref.states = torch.load(path, weights_only=False)
            return ref
        ref = DenseReference(self.model, self.text, batch_size=4)
        torch.save((ref.scorer, ref.states), path)
        return ref

    def _calibration_stats(self) -> None:
        path = self.cache / "calibration-stats.pt"
        if path.exists():
            self.calib.__dict__["stats"] = torch.load(path, weights_only=False)
        else:
            torch.save(self.calib.stats, path)

    # ------------------------------------------------------------------------------- trained modules

    def save_module(self, point: str, model, plan) -> None:
        module = arch.decoder_layers(model)[plan.ops[0]["start"]]
        torch.save({n: p.detach().clone() for n, p in module.named_parameters()}, self.cache / "modules" / f"{point}.pt")

    def rebuild(self, point: dict, plan_ops: list[dict]):
        """A trained point's model: the plan applied to a copy of the dense model, the saved module loaded."""
        params = {"replacement": point["replacement"], **design.OBJECTIVES[point["objective"]], "train_seed": point["seed"]}
        pruner = methods.create("streamline", params)
        plan = pruner.plan(self.model, self.calib, self.budget)
        if plan.ops != plan_ops:
            raise RuntimeError(f"the plan changed since {point['name']} was trained: {plan.ops} vs {plan_ops}")
        model = pruner.apply(copy.deepcopy(self.model), plan)
        pruner._teachers.pop(model, None)
        state = torch.load(self.cache / "modules" / f"{point['name']}.pt")
        with torch.no_grad():
            for n, p in arch.decoder_layers(model)[plan.ops[0]["start"]].named_parameters():
                p.copy_(state[n])
        return model

    # ---------------------------------------------------------------------------------------- accuracy

    def accuracy(self, point_name: str) -> None:
        from bench.evaluate.multiple_choice import evaluate_accuracy

        path = self.out / "accuracy" / f"{point_name}.json"
        record = self.done().get(point_name)
        if path.exists() or record is None:
            return
        if design.ACC_SECONDS > self.left():
            log.info("skipping accuracy of %s: %.0f s left before the deadline", point_name, self.left())
            return
        point = record["point"]
        if point["kind"] == "train":
            if not (self.cache / "modules" / f"{point_name}.pt").exists():
                return
            model = self.rebuild(point, record["ops"])
        elif point["kind"] == "default":
            if not (self.cache / "modules" / f"{point_name}.pt").exists():
                return
            model = self.rebuild({**point, "replacement": "layer", "objective": "lm"}, record["ops"])
        else:
            model = self.build(point)[0]
        log.info("accuracy of %s: %s, every document", point_name, ", ".join(design.ACC_TASKS))
        res = evaluate_accuracy(model, self.tok, list(design.ACC_TASKS), batch_size=32, engine="prefix")
        out = {"point": point_name, "engine": "prefix", "wall_s": res.wall_s, "tasks": {}, "per_document": {}}
        for task, score in res.tasks.items():
            out["tasks"][task] = {"metric": score.metric, "n": score.n, "acc": score.acc, "acc_norm": score.acc_norm,
                                  "version": score.version, "split": score.split}
            rows = sorted(res.samples[task], key=lambda s: s["doc_id"])
            out["per_document"][task] = [float(s[score.metric]) for s in rows]
        log.info("accuracy of %s: %s (%.0f s)", point_name,
                 {t: round(v[v["metric"]], 4) for t, v in out["tasks"].items()}, res.wall_s)
        write_json(path, out)
