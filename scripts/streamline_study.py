"""The LLM-Streamline study: does a trained replacement beat dropping the block, and ShortGPT / LaCo?

    python scripts/streamline_study.py run    [--out reports/streamline-study] [--deadline HH:MM]
    python scripts/streamline_study.py report [--out reports/streamline-study] [--page reports/streamline-study.md]

SmolLM2-135M, 8 of its 30 decoder layers removed (25 % of the layers) by every point. Baselines at the same
layer budget: `none` (Streamline's block dropped, no replacement), ShortGPT, LaCo. Streamline's `layer`
replacement (layer l kept, layers l+1..l+8 deleted, layer l trained) under each objective: `mse` (the
official loss), `mse` without position 0 (`mse_skip_first=1`: the attention-sink position), `lm`
(next-token loss) and `kd` (KL from the dense model's logits), at the training-token budgets `BUDGETS`
(geometric, 25.6 K to 1.02 M tokens); `mlp` and `ffn` replacements at the best objective; a second seed at
the largest budget; and the method's defaults (`methods.create("streamline")`, the official schedule) with
two seeds.

One run per (replacement, objective, seed) gives every budget: the study trains with a constant learning
rate (2e-4, no warm-up; the official loop's effective schedule is 2e-4 decaying only to 1.95e-4 after an 8 %
warm-up) on one seeded stream of windows, so the state after N tokens *is* the N-token run (the same
batches, the same steps: `tests/test_train.py`), and each budget is a checkpoint of the longest run
(`bench.train.train(on_step=...)`).

Data (document-level, disjoint by construction, `bench.data.splits`): calibration on the Wikipedia sample's
calibration range; training windows (256 tokens, batch 4) from the C4 sample's training range; evaluation on
whole documents of the C4 sample's evaluation range (bits per byte, KL(dense || pruned), top-1 agreement,
`bench.evaluate.bits_per_byte`), and full PIQA and ARC-Easy (lm-eval tasks, the prefix engine) for the points in
`ACCURACY`.

Compute reuse (`streamline_study_teacher.TeacherCache`): the dense model runs once over every training window and keeps
h_l (the input of the replaced block), the dense h_{l+9} (the MSE target) and the dense final-normed hidden
state (whose LM-head product is the kd teacher's logits). Every objective then trains from h_l: the frozen
prefix (layers 0..l-1) is never run again, and the kd teacher is one head matmul instead of a dense forward.
The first batch checks the cached path against the model's own forward.

Every point writes <out>/points/<name>.json (atomic) and is skipped when present: `run` resumes (a run
restarts from step 0 but skips the budgets already written). `--deadline` (UTC, HH:MM) stops starting work
that would end after it, and stops a run at its last budget before it. `report` writes the page.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import logging
import time
from pathlib import Path

import torch

import methods
from bench.core.atomic import write_json
from bench.data import splits
from bench.data.calibration import Calibration, CalibSpec
from bench.evaluate.bits_per_byte import DenseReference, evaluate_fidelity, prepare_text
from bench.models import arch, zoo
from bench.run.pipeline import prune
from methods.base import Budget

log = logging.getLogger("streamline_study")

LAYERS = 8
SEQ, BATCH = 256, 4
WINDOWS = tuple(BATCH * round(25 * 40 ** (i / 4)) for i in range(5))  # 100, 252, 632, 1592, 4000 windows
BUDGETS = tuple(w * SEQ for w in WINDOWS)  # 25,600 .. 1,024,000 tokens, ratio 40^(1/4) = 2.51
SCHEDULE = {"schedule": "constant", "warmup": 0.0, "lr": 2e-4}
EVAL_BYTES = 40_000                 # whole C4 evaluation documents up to this many UTF-8 bytes in all,
EVAL_DOC_BYTES = 2_000              # taking, in corpus order, the documents of at most this many bytes
ACC_TASKS = ("piqa", "arc_easy")
CALIB = CalibSpec(source="wikipedia", n_samples=32, seq_len=128, seed=0)
OBJECTIVES = {"mse": {"objective": "mse"}, "mse_skip1": {"objective": "mse", "mse_skip_first": 1},
              "lm": {"objective": "lm"}, "kd": {"objective": "kd"}}
# LaCo with the official Baichuan2-13B notebook's settings (C = 3, I = 1, T = 0.6, two calibration sequences)
LACO = {"name": "laco", "kind": "baseline", "method": "laco",
        "params": {"layers_per_merge": 3, "interval": 1, "threshold": 0.6, "n_sentences": 2}, "estimate_s": 900}
# seconds per training token on the study machine (quiet, 2 cores, bf16), from the cached teacher states
COST = {"mse": 0.0003, "mse_skip1": 0.0003, "lm": 0.0022, "kd": 0.003}
ACC_SECONDS = 420


def name(replacement: str, objective: str, tokens: int, seed: int) -> str:
    return f"{replacement}-{objective}-{tokens // 1000}k-s{seed}"


def _run(replacement: str, objective: str, seed: int, windows: int = WINDOWS[-1]) -> dict:
    return {"kind": "train", "replacement": replacement, "objective": objective, "seed": seed,
            "windows": windows, "name": f"run {replacement}-{objective}-s{seed}"}


def jobs() -> list[dict]:
    """Every job in the order it runs: the cheap and the decisive first, so a deadline cuts the tail. `kd` runs
    to WINDOWS[2] first (which objective gets there first is decided at the small budgets) and restarts for
    the larger ones at the end (a restart skips the budgets already written)."""
    base = [{"name": "dense", "kind": "dense"},
            {"name": "none", "kind": "baseline", "method": "streamline", "params": {"replacement": "none"}},
            {"name": "shortgpt", "kind": "baseline", "method": "shortgpt", "params": {}}]
    out = [*base, _run("layer", "mse", 0), _run("layer", "mse_skip1", 0), _run("layer", "lm", 0),
           _run("layer", "kd", 0, windows=WINDOWS[min(2, len(WINDOWS) - 1)])]
    out += [{"name": f"default-s{s}", "kind": "default", "seed": s} for s in (0, 1)]
    out += [{"kind": "best", "what": w} for w in ("mlp", "ffn")]
    out += [_run("layer", "mse", 1)]  # a second seed at the largest budget, minutes with the cached states
    out += [{"kind": "accuracy", "of": n} for n in ("none", "shortgpt", "best-last")]
    out += [LACO]
    out += [{"kind": "accuracy", "of": n} for n in ("best-first", "default-s0")]
    out += [{"kind": "best", "what": "seed1"}, _run("mlp", "mse", 0), _run("ffn", "mse", 0),
            {"kind": "accuracy", "of": "layer-mse-1024k-s0"}, _run("layer", "kd", 0),
            {"kind": "accuracy", "of": "dense"}, {"kind": "accuracy", "of": "default-s1"}]
    return out


def study_fidelity(fid) -> dict:
    """A FidelityResult as the study's records keep it (reports/streamline-study, read by
    streamline_study_report.py): the text's `label`, `kl`, every document's sums and the identity."""
    import dataclasses

    return {"label": fid.corpus, "documents": fid.documents, "bytes": fid.bytes, "tokens": fid.tokens,
            "windows": fid.windows, "window": fid.window, "prefix": fid.prefix, "nll": fid.nll,
            "bits_per_byte": fid.bits_per_byte, "kl": fid.kl_to_dense, "top1_agreement": fid.top1_agreement,
            "wall_s": fid.wall_s, "per_document": [dataclasses.asdict(d) for d in fid.per_document],
            "identity": fid.identity}


def best_run(what: str, best: str) -> dict:
    """The run a `best` job stands for: a second seed of the best objective, or its mlp / ffn replacement."""
    if what == "seed1":
        return _run("layer", best, 1)
    cheap = best in ("mse", "mse_skip1")  # module-only training: the whole grid costs minutes
    return _run(what, best, 0, windows=WINDOWS[-1] if cheap else WINDOWS[min(2, len(WINDOWS) - 1)])


def best_objective(done: dict[str, dict]) -> str | None:
    """The objective whose seed-0 `layer` point at the largest budget any objective reached has the lowest
    bits per byte (every objective's run checkpoints at the same budgets)."""
    rows = [r for r in done.values() if r["point"]["kind"] == "train" and r["point"]["replacement"] == "layer"
            and r["point"]["seed"] == 0]
    if not rows:
        return None
    top = max(r["point"]["tokens"] for r in rows)
    return min((r for r in rows if r["point"]["tokens"] == top),
               key=lambda r: r["fidelity"]["bits_per_byte"])["point"]["objective"]


class Study:
    def __init__(self, out: Path, cache: Path, deadline: dt.datetime | None):
        from streamline_study_teacher import TeacherCache

        self.out, self.cache, self.deadline = out, cache, deadline
        for sub in ("points", "accuracy"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        (cache / "modules").mkdir(parents=True, exist_ok=True)
        self.model, self.tok = zoo.load("smollm2-135m")
        self.model.requires_grad_(False)
        self.calib = Calibration(CALIB, self.model, self.tok)
        self._calibration_stats()
        from bench.data.training_text import TrainData, TrainDataSpec

        self.data = TrainData(TrainDataSpec(source="c4"), self.tok)
        docs = [d for d in splits.documents("c4", "evaluation") if len(d.encode("utf-8")) <= EVAL_DOC_BYTES]
        self.text = prepare_text(self.tok, docs, label="C4-sample evaluation range", window=1024,
                                 max_bytes=EVAL_BYTES)
        self.reference: DenseReference | None = None
        self.budget = Budget(layers=LAYERS)
        self.teacher = TeacherCache(self, cache)

    # ------------------------------------------------------------------------------------------- store

    def path(self, point: str) -> Path:
        return self.out / "points" / f"{point}.json"

    def done(self) -> dict[str, dict]:
        return {p.stem: json.loads(p.read_text()) for p in sorted((self.out / "points").glob("*.json"))}

    def left(self) -> float:
        return float("inf") if self.deadline is None else (self.deadline - dt.datetime.now(dt.UTC)).total_seconds()

    def run(self) -> None:
        for job in jobs():
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
                from streamline_study_train import run_training

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
        best = best_objective(done)
        if job["kind"] == "accuracy" and job["of"].startswith("best-"):
            if best is None:
                return None
            tokens = [r["point"]["tokens"] for r in done.values() if r["point"]["kind"] == "train"
                      and r["point"]["objective"] == best and r["point"]["replacement"] == "layer"
                      and r["point"]["seed"] == 0]
            return {"kind": "accuracy", "of": name("layer", best, min(tokens) if job["of"] == "best-first" else max(tokens), 0)}
        if job["kind"] != "best":
            return job
        return None if best is None else best_run(job["what"], best)

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
        params = {"replacement": point["replacement"], **OBJECTIVES[point["objective"]], "train_seed": point["seed"]}
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
        if ACC_SECONDS > self.left():
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
        log.info("accuracy of %s: %s, every document", point_name, ", ".join(ACC_TASKS))
        res = evaluate_accuracy(model, self.tok, list(ACC_TASKS), batch_size=32, engine="prefix")
        out = {"point": point_name, "engine": "prefix", "wall_s": res.wall_s, "tasks": {}, "per_document": {}}
        for task, score in res.tasks.items():
            out["tasks"][task] = {"metric": score.metric, "n": score.n, "acc": score.acc, "acc_norm": score.acc_norm,
                                  "version": score.version, "split": score.split}
            rows = sorted(res.samples[task], key=lambda s: s["doc_id"])
            out["per_document"][task] = [float(s[score.metric]) for s in rows]
        log.info("accuracy of %s: %s (%.0f s)", point_name,
                 {t: round(v[v["metric"]], 4) for t, v in out["tasks"].items()}, res.wall_s)
        write_json(path, out)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("action", choices=["run", "report"])
    p.add_argument("--out", default="reports/streamline-study")
    p.add_argument("--page", default="reports/streamline-study.md")
    p.add_argument("--cache", default="/tmp/streamline-study-cache", help="teacher states (not committed)")
    p.add_argument("--deadline", default=None, help="UTC HH:MM after which no work starts")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    out = Path(args.out)
    if args.action == "run":
        deadline = None
        if args.deadline:
            hh, mm = map(int, args.deadline.split(":"))
            deadline = dt.datetime.now(dt.UTC).replace(hour=hh, minute=mm, second=0, microsecond=0)
        Study(out, Path(args.cache), deadline).run()
    else:
        from streamline_study_report import write_report

        write_report(out, Path(args.page))


if __name__ == "__main__":
    main()
