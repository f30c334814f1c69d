"""One training run of the Streamline study: every budget of one (replacement, objective, seed), as checkpoints.

The module is trained by `bench.train.train` (the loop `Streamline.heal` uses) under the study's constant
schedule, from the cached dense states (`teacher.TeacherCache`): h_l enters the module through the exact
arguments the model passes to position l (`bench.models.layercall.capture`), and for `lm` / `kd` the pruned
model's layers after it, its final norm and its LM head run on top. Before training, the cached path is
checked against the model's own forward on the first batch (the lm loss, and the kd teacher's logits).

At each budget in `design.WINDOWS` (tokens = windows x 256) the run is paused: a copy of the model with the
module cast back to the model's dtype is scored (`Study.fidelity`), the module's weights are saved to the
cache (for accuracy later), and the point is written. Training seconds exclude these evaluations.
"""

from __future__ import annotations

import copy
import logging
import random
import time

import torch
import torch.nn.functional as F

import methods
from bench.core.atomic import write_json
from bench.models import arch
from bench.models.layercall import capture
from bench.train import flops_per_token, matmul_params, train
from methods.streamline import kd_loss
from scripts.streamline_study import design

log = logging.getLogger("streamline_study")


class _Deadline(Exception):
    pass


class _Index:
    """A batch stand-in for `bench.train.train`: the index of a cached batch, counting its tokens."""

    def __init__(self, index: int, tokens: int):
        self.index, self.tokens = index, tokens

    def numel(self) -> int:
        return self.tokens


def run_training(study, job: dict) -> None:
    per_batch, seq = design.BATCH, design.SEQ
    repl, obj, seed = job["replacement"], job["objective"], job["seed"]
    names = {w * seq: design.name(repl, obj, w * seq, seed) for w in design.WINDOWS if w <= job["windows"]}
    done = study.done()
    missing = [t for t, n in names.items() if n not in done]
    if not missing:
        return
    tc = study.teacher
    n_batches = job["windows"] // per_batch
    cache_left = max(0, n_batches - len(tc.inputs)) * per_batch * seq / 1000.0  # ~1000 dense tokens/s
    estimate = min(missing) * design.COST[obj] + cache_left + 60
    if estimate > study.left():
        log.info("skipping %s: about %.0f s to its first budget, %.0f s left", job["name"], estimate, study.left())
        return
    log.info("job %s (budgets %s)", job["name"], ", ".join(f"{t:,}" for t in names))
    tc.ensure(n_batches)

    params = {"replacement": repl, **design.OBJECTIVES[obj], "train_seed": seed, "train_samples": job["windows"],
              "train_seq_len": seq, "train_batch": per_batch, **design.SCHEDULE}
    pruner = methods.create("streamline", params)
    plan = pruner.plan(study.model, study.calib, study.budget)
    model = pruner.apply(copy.deepcopy(study.model), plan)
    pruner._teachers.pop(model, None)  # the cached states stand in for the on-the-fly teacher
    start = plan.ops[0]["start"]
    if (start, plan.ops[0]["stop"] - 1) != (tc.start, tc.last):
        raise RuntimeError(f"{job['name']}: window {plan.ops[0]} is not the cached one ({tc.start}..{tc.last})")
    layers = arch.decoder_layers(model)
    module, head, norm = layers[start], model.get_output_embeddings(), arch.final_norm(model)
    calls = capture(model, tc.ids(0), inputs=list(range(start, len(layers)))).calls
    skip = pruner.params.mse_skip_first

    def logits_from(h):
        for j in range(start, len(layers)):
            h = calls[j](layers[j], h)
        return head(norm(h))

    def lm(b, h):
        ids = tc.ids(b)
        return F.cross_entropy(logits_from(h)[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten())

    losses: list[float] = []

    def loss_fn(batch):
        b = batch.index
        h = tc.inputs[b]
        if obj in ("mse", "mse_skip1"):
            loss = F.mse_loss(calls[start](module, h)[:, skip:].float(), tc.targets[b][:, skip:].float())
        elif obj == "lm":
            loss = lm(b, h)
        else:
            with torch.no_grad():
                teacher = head(tc.finals[b])
            loss = kd_loss(logits_from(h), teacher, pruner.params.kd_temperature)
        losses.append(float(loss.detach()))
        return loss

    check = _check(study, model, tc, lm, head, obj)
    path_params = matmul_params([module]) if obj.startswith("mse") else matmul_params([*layers[start:], head])
    frozen = matmul_params([head]) if obj == "kd" else 0
    fpt = flops_per_token(frozen, path_params)
    order = list(range(n_batches))
    if seed:
        random.Random(seed).shuffle(order)
    t0, spent = time.perf_counter(), {"eval": 0.0}
    dtype = next(study.model.parameters()).dtype

    def on_step(step: int, tokens: int) -> None:
        if tokens not in names:
            return
        t_eval = time.perf_counter()
        train_s = t_eval - t0 - spent["eval"]
        point = names[tokens]
        if point not in study.done():
            snap = copy.deepcopy(model)
            arch.decoder_layers(snap)[start].to(dtype)
            snap.requires_grad_(False)
            record = study.base_record({"kind": "train", "name": point, "replacement": repl, "objective": obj,
                                        "seed": seed, "tokens": tokens, "windows": tokens // seq})
            record.update(study.plan_fields(plan))
            tail = losses[-min(len(losses), 25):]
            record["training"] = {
                "tokens": tokens, "steps": step, "train_seconds": train_s, "flops_per_token": fpt,
                "flops": fpt * tokens, "loss_first": losses[0], "loss_last25": sum(tail) / len(tail),
                "loss_curve": [[i + 1, round(v, 5)] for i, v in enumerate(losses) if (i + 1) % 25 == 0 or i == 0],
                "hyper": pruner.params.train_dict(), "objective": obj, "precision": "bf16 autocast, fp32 master",
                "teacher": {"cached": "dense h_l, h_l+9 and final-normed states, computed once per window",
                            "flops_per_token": tc.flops_per_token, "seconds_this_process": tc.seconds},
                "cached_path_check": check, "batch_order_seed": seed}
            record["training_data"] = tc.describe
            record["fidelity"] = study.fidelity(snap, point)
            study.save_module(point, snap, plan)
            record["wall_s"] = time.perf_counter() - t0
            write_json(study.path(point), record)
            del snap
        spent["eval"] += time.perf_counter() - t_eval
        later = [t for t in names if t > tokens]
        if later:
            rate = train_s / tokens
            need = (min(later) - tokens) * rate + 60
            if need > study.left():
                log.info("%s: stopping at %s tokens: the next budget needs about %.0f s, %.0f s left",
                         job["name"], f"{tokens:,}", need, study.left())
                raise _Deadline

    batches = (_Index(b, per_batch * seq) for b in order)
    try:
        train(model, list(module.parameters()), loss_fn, batches, n_batches, pruner.params, flops_token=fpt,
              what=f"study {job['name']}", on_step=on_step)
    except _Deadline:
        pass


def _check(study, model, tc, lm, head, obj: str) -> dict:
    """The cached path against the model's own forward on batch 0 (before any training)."""
    if obj.startswith("mse"):
        return {}
    ids = tc.ids(0)
    device = next(model.parameters()).device
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=True):
        mine = float(lm(0, tc.inputs[0]))
        theirs = float(model(input_ids=ids, labels=ids, use_cache=False).loss)
    out = {"lm_loss_cached": mine, "lm_loss_model": theirs}
    with torch.no_grad():
        dense = study.model(input_ids=ids, use_cache=False).logits.float()
        cached = head(tc.finals[0]).float()
    out["teacher_logits_max_abs_diff"] = float((dense - cached).abs().max())
    log.info("cached path check: %s", out)
    if abs(mine - theirs) > 0.02 * abs(theirs) or out["teacher_logits_max_abs_diff"] > 0.5:
        raise RuntimeError(f"the cached training path disagrees with the model's forward: {out}")
    return out
