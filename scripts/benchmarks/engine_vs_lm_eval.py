"""The evaluation engine vs plain lm-eval over a pruning matrix: time, peak memory, identical numbers.

    nice -n 5 python -m scripts.benchmarks.engine_vs_lm_eval --out DIR [--limit 500] [--ratio 0.25]

The quick preset's methods at one ratio (seed 0, the preset's method parameters and calibration) on
SmolLM2-135M in fp32, each pruned once and exported (`bench.models.export.save_pruned`); the dense checkpoint
is the zoo's folder. Two worker processes evaluate PIQA, ARC-Easy and WinoGrande on one seeded subset of
`--limit` documents each, cell by cell, interleaved (plain, engine, plain, engine, ...) so that load on
a shared machine hits both alike:

- plain: `HFLM(pretrained=<reloaded checkpoint>, batch_size=8, softmax_dtype="float32")` and
  `lm_eval.simple_evaluate(..., samples=<the subset>)`: what a user of lm-eval writes;
- engine: `evaluate_accuracy(engine="prefix")` as `bench run` calls it: the dense cell stores boundary
  states, each pruned checkpoint reuses them up to its shared prefix (`first_changed_layer` of its plan,
  checked against the weights).

Evaluation time only (model loading excluded from both), wall and process CPU seconds; each worker's peak
RSS (the engine's includes its boundary states). Per cell: the ratio engine/plain, the largest per-choice
log-likelihood difference and whether every prediction is identical. Resumable: finished cells are kept
in DIR/results.json (a fresh engine worker first re-runs the dense cell, untimed, to rebuild its states).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

TASKS = ["piqa", "arc_easy", "winogrande"]
BATCH = 8


def _subset(limit: int, seed: int):
    from bench.data import tasks as registry
    from bench.evaluate.lm_eval_glue import document_subset, task_manager

    loaded = task_manager().load(registry.lm_eval_spec(registry.resolve(TASKS), "local"))
    return document_subset(loaded["tasks"], limit, seed)


def _samples(res) -> dict:
    out = {}
    for task in TASKS:
        out[task] = [[int(s["doc_id"]), [float(r[0]) for r in s["filtered_resps"]],
                      s.get("acc"), s.get("acc_norm")] for s in res["samples"][task]]
    return out


def _worker(kind: str, conn, cells: dict, limit: int, seed: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    from transformers import AutoModelForCausalLM

    from bench.data import tasks as registry
    from bench.models import zoo

    registry.configure_offline("local")
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    from bench.evaluate.engine import (
        BoundaryStates,
        Reuse,
        bisection_order,
        first_changed_layer,
        shared_prefix,
    )
    from bench.evaluate.lm_eval_glue import task_manager
    from bench.evaluate.multiple_choice import evaluate_accuracy
    from methods.base import PrunePlan

    dense, tok = zoo.load(zoo.DEFAULT_MODEL, device="cpu", dtype="float32")
    chosen = _subset(limit, seed)
    states = BoundaryStates()
    n_layers = dense.config.num_hidden_layers

    def evaluate(cell: str) -> dict:
        path = cells[cell]
        model = dense if cell == "dense" else AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        wall, cpu = time.perf_counter(), time.process_time()
        extra = {}
        if kind == "plain":
            tm = task_manager()
            suite = tm.load(registry.lm_eval_spec(registry.resolve(TASKS), "local"))["groups"]["bench"]
            lm = HFLM(pretrained=model, tokenizer=tok, batch_size=BATCH, softmax_dtype="float32")
            res = lm_eval.simple_evaluate(model=lm, tasks=[suite], task_manager=tm, num_fewshot=0, batch_size=BATCH,
                                          samples=chosen, log_samples=True, bootstrap_iters=1000)
            samples = _samples(res)
        else:
            if cell == "dense":
                reuse = Reuse(states, n_layers, tuple(bisection_order(n_layers)), share=0.25)
            else:
                plan = PrunePlan.from_json((Path(path) / "plan.json").read_text())
                shared = shared_prefix(dense, model, first_changed_layer(plan))
                reuse = Reuse(states, shared, (shared,) if shared else ())
                extra["first_changed_layer"], extra["shared_layers"] = first_changed_layer(plan), shared
            r = evaluate_accuracy(model, tok, TASKS, batch_size=BATCH, limit=limit, subset="random",
                                  subset_seed=seed, engine="prefix", reuse=reuse, bootstrap_iters=1000,
                                  keep_lm_eval_samples=True)
            samples = {t: [[int(s["doc_id"]), [float(x[0]) for x in s["filtered_resps"]], s.get("acc"),
                            s.get("acc_norm")] for s in r.lm_eval_samples[t]] for t in TASKS}
            extra["engine_stats"] = r.engine_stats
            extra["state_bytes"] = states.nbytes
        out = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu, "samples": samples, **extra}
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return out

    conn.send({"ready": True})
    while True:
        message = conn.recv()
        if message is None:
            break
        if message.get("warm"):
            evaluate(message["warm"])
            conn.send({"warmed": True})
            continue
        conn.send(evaluate(message["cell"]))


def _prune_and_export(out: Path, ratio: float, seed: int) -> dict[str, str]:
    """The quick preset's cells at `ratio`, pruned and exported once (kept across resumes)."""
    import dataclasses

    import methods
    from bench.data.calibration import Calibration
    from bench.data.training_text import TrainData, TrainDataSpec
    from bench.models import zoo
    from bench.models.export import save_pruned
    from bench.run import config, presets
    from bench.run.cells import calib_spec, expand
    from bench.run.pipeline import prune
    from methods.base import Budget

    data = presets.get("quick")
    data.update(ratios=[ratio], seeds=[seed], dtype="float32", device="cpu")
    spec = config.from_dict(data)
    cells = {"dense": str(zoo.ensure_local(zoo.DEFAULT_MODEL))}
    model = tok = calib = train = None
    for cell in expand(spec):
        if cell.dense:
            continue
        target = out / "checkpoints" / cell.method
        cells[cell.method] = str(target)
        if (target / "plan.json").exists():
            continue
        if model is None:
            model, tok = zoo.load(zoo.DEFAULT_MODEL, device="cpu", dtype="float32")
        pruner = methods.create(cell.method, dict(cell.params))
        if pruner.needs_calibration and calib is None:
            calib = Calibration(calib_spec(spec, seed), model, tok)
        if pruner.trains and train is None:
            train = TrainData(TrainDataSpec(**dataclasses.asdict(spec.train)), tok)
        log.info("pruning %s", cell.label)
        result = prune(model, pruner, Budget(ratio=ratio), calib, copy_model=True, heal_data=train)
        save_pruned(result.model, tok, result.plan, target, base_model=zoo.DEFAULT_MODEL)
    return cells


def _compare(plain: dict, engine: dict) -> dict:
    worst, same = 0.0, True
    for task in TASKS:
        assert [d[0] for d in plain[task]] == [d[0] for d in engine[task]], task
        for p, e in zip(plain[task], engine[task], strict=True):
            worst = max(worst, max(abs(a - b) for a, b in zip(p[1], e[1], strict=True)))
            same &= p[2] == e[2] and p[3] == e[3]
    return {"max_abs_loglik_diff": worst, "identical_predictions": same,
            "documents": {t: len(plain[t]) for t in TASKS}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--out", required=True)
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--ratio", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    parser.add_argument("--cells", help="comma-separated subset of cells (default: dense and every method)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {"cells": {}}
    results["settings"] = {"limit": args.limit, "ratio": args.ratio, "seed": args.seed, "threads": args.threads,
                           "tasks": TASKS, "batch_size": BATCH, "dtype": "float32"}
    cells = _prune_and_export(out, args.ratio, args.seed)
    order = ["dense", *sorted(c for c in cells if c != "dense")]
    if args.cells:
        order = [c for c in order if c in args.cells.split(",")]
    todo = [c for c in order if c not in results["cells"]]
    ctx = mp.get_context("spawn")
    workers = {}
    for kind in ("plain", "engine"):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(kind, child, cells, args.limit, args.seed, args.threads))
        proc.start()
        workers[kind] = (proc, parent)
    for _, conn in workers.values():
        conn.recv()
    if todo and todo[0] != "dense" and "dense" in cells:  # rebuild the engine's states, untimed
        workers["engine"][1].send({"warm": "dense"})
        workers["engine"][1].recv()
    for cell in todo:
        row = {}
        for kind in ("plain", "engine"):
            log.info("%s: %s", cell, kind)
            workers[kind][1].send({"cell": cell})
            row[kind] = workers[kind][1].recv()
        check = _compare(row["plain"].pop("samples"), row["engine"].pop("samples"))
        row.update(check, ratio_wall=row["engine"]["wall_s"] / row["plain"]["wall_s"],
                   ratio_cpu=row["engine"]["cpu_s"] / row["plain"]["cpu_s"], load_avg=os.getloadavg())
        results["cells"][cell] = row
        tmp = results_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1))
        tmp.replace(results_path)
        log.info("%s", json.dumps({cell: {k: row[k] for k in ("ratio_wall", "ratio_cpu", "max_abs_loglik_diff",
                                                     "identical_predictions")}}), flush=True)
    for proc, conn in workers.values():
        conn.send(None)
        proc.join()
    done = results["cells"]
    if done:
        for clock in ("wall", "cpu"):
            plain = sum(r["plain"][f"{clock}_s"] for r in done.values())
            engine = sum(r["engine"][f"{clock}_s"] for r in done.values())
            results[f"matrix_ratio_{clock}"] = engine / plain
        results["peak_rss_mb"] = {k: max(r[k]["peak_rss_mb"] for r in done.values()) for k in ("plain", "engine")}
        results["cells_done"] = list(done)
        results_path.write_text(json.dumps(results, indent=1))
        log.info("%s", json.dumps({k: v for k, v in results.items() if k != "cells"}, indent=1))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.exit(main())
