"""The Streamline study page's answers, defaults, gaps and compute, derived from the points only."""

from __future__ import annotations

import methods
from scripts.streamline_study import design
from scripts.streamline_study.points import LABELS, accuracy_tests, bpb, bpb_ci, fmt_ci, trained


def _layer_s0(points: dict[str, dict]) -> list[dict]:
    return [r for r in trained(points) if r["point"]["replacement"] == "layer" and r["point"]["seed"] == 0]


def _acc_line(name: str, acc: dict[str, dict], against: str) -> str:
    if name not in acc or against not in acc:
        return ""
    tests = accuracy_tests(acc)
    parts = []
    for task in acc[name]["per_document"]:
        m, p_holm = tests[(name, against, task)]
        diff = 100 * (m.only_a - m.only_b) / m.n
        verdict = ("higher" if diff > 0 else "lower") if p_holm < 0.05 else "not distinguishable"
        parts.append(f"{task} {diff:+.1f} points (McNemar p={m.p:.3g}, Holm {p_holm:.3g}: {verdict})")
    return f" Accuracy of `{name}` vs `{against}`: " + "; ".join(parts) + "."


def answers(points: dict[str, dict], acc: dict[str, dict]) -> list[str]:
    none, short = points["none"], points.get("shortgpt")
    rows = _layer_s0(points)
    lines = []
    first: dict[str, int] = {}        # objective -> the budget from which every larger one beats none
    by_objective: dict[str, list] = {}
    for r in sorted(rows, key=lambda r: r["point"]["tokens"]):
        by_objective.setdefault(r["point"]["objective"], []).append(r)
    for objective, series in by_objective.items():
        beats = [bpb_ci(r, none)[1] < 0 for r in series]
        if not any(beats):
            continue
        start = len(beats)
        while start > 0 and beats[start - 1]:
            start -= 1
        if start < len(beats):
            first[objective] = series[start]["point"]["tokens"]
    if first:
        def _with_gaps(o: str, t: int) -> str:
            early = [r for r in by_objective[o] if r["point"]["tokens"] < t and bpb_ci(r, none)[1] < 0]
            text = f"{LABELS[o]} from {t:,} tokens on"
            if early:
                text += " (also at " + ", ".join(f"{r['point']['tokens']:,}" for r in early) + ", but not in between)"
            return text

        lines.append("1. **Does a trained replacement beat `none`?** Yes (paired 95 % CI of the bits-per-byte "
                     "difference entirely below 0, per comparison, unadjusted), at every budget from: "
                     + "; ".join(_with_gaps(o, t) for o, t in sorted(first.items(), key=lambda kv: kv[1])) + ".")
        for o, series in by_objective.items():
            if o not in first and any(bpb_ci(r, none)[1] < 0 for r in series):
                lines.append(f"   {LABELS[o]}: below `none` at " + ", ".join(
                    f"{r['point']['tokens']:,}" for r in series if bpb_ci(r, none)[1] < 0)
                    + " tokens, but not at the largest budget reached.")
        never = [LABELS[o] for o in LABELS if o not in first and any(r["point"]["objective"] == o for r in rows)]
        if never:
            lines.append(f"   Not at any budget tried: {', '.join(never)}.")
        ends = sorted(n for n in acc if n.startswith("layer-"))
        lines += [f"  {line}" for line in (_acc_line(n, acc, "none") for n in ends) if line]
        budget = min(first.values())
        at = sorted((r for r in rows if r["point"]["tokens"] == budget), key=bpb)
        best = at[0]
        tied = [r for r in at[1:] if bpb_ci(r, best)[0] <= 0]  # the best's lead over r is not established
        lead = [LABELS[r["point"]["objective"]] for r in [best, *tied]]
        text = (f"2. **Which objective gets there first?** Every objective was scored at the same budgets; at the "
                f"smallest, {budget:,} tokens, " + (f"{' and '.join(lead)} tie" if tied else f"{lead[0]} leads")
                + " (" + ", ".join(f"{LABELS[r['point']['objective']]} {bpb(r):.4f}" for r in at) + " bits/byte")
        for r in tied:
            lo, hi = bpb_ci(best, r)
            text += (f"; {LABELS[best['point']['objective']]} minus {LABELS[r['point']['objective']]}: "
                     f"{bpb(best) - bpb(r):+.4f} {fmt_ci(lo, hi, 4)}, not distinguishable")
        rest = [r for r in at[1:] if r not in tied]
        if rest:
            lo, hi = bpb_ci(best, rest[0])
            text += (f"; against the next, {LABELS[rest[0]['point']['objective']]}, {bpb(best) - bpb(rest[0]):+.4f} "
                     f"{fmt_ci(lo, hi, 4)}")
        lines.append(text + ").")
    else:
        lines.append("1. **Does a trained replacement beat `none`?** Not at any budget tried.")
        lines.append("2. **Which objective gets there first?** None does within the budgets tried.")
    if short is not None:
        every = trained(points) + [r for r in points.values() if r["point"]["kind"] == "default"]
        beat = [r for r in every if bpb_ci(r, short)[1] < 0]
        best = min(every, key=bpb) if every else None
        if beat:
            firsts: dict[tuple, dict] = {}
            for r in sorted(beat, key=lambda r: r["training"]["tokens"]):
                key = (r["point"].get("replacement", "layer"), r["point"].get("objective", "default"))
                firsts.setdefault(key, r)
            lines.append("3. **Does it beat ShortGPT at 25 %?** Yes in bits per byte (paired CI below 0), first at: "
                         + "; ".join(f"{repl} / {LABELS.get(obj, obj)} {r['training']['tokens']:,} tokens "
                                     f"({bpb(r):.4f} vs {bpb(short):.4f}, {fmt_ci(*bpb_ci(r, short))})"
                                     for (repl, obj), r in firsts.items())
                         + f". {len(beat)} of {len(every)} trained points are below ShortGPT.")
        elif best is not None:
            lo, hi = bpb_ci(best, short)
            lines.append(f"3. **Does it beat ShortGPT at 25 %?** Not in bits per byte: the best trained point "
                         f"({best['point']['name']}, {bpb(best):.4f}) vs ShortGPT {bpb(short):.4f}: "
                         f"{bpb(best) - bpb(short):+.4f} {fmt_ci(lo, hi)}, "
                         + ("higher." if lo > 0 else "not distinguishable."))
        ends = sorted(n for n in acc if n.startswith("layer-") or n.startswith("default-"))
        lines += [f"  {line}" for line in (_acc_line(n, acc, "shortgpt") for n in ends) if line]
    lines += _seeds(points)
    return lines


def _seeds(points: dict[str, dict]) -> list[str]:
    """Seed 0 vs seed 1 where both exist (the run's window order and any init differ)."""
    lines = []
    by = {(r["point"]["replacement"], r["point"]["objective"], r["point"]["tokens"], r["point"]["seed"]): r
          for r in trained(points)}
    pairs = [(k, by[k], by[(*k[:3], 1)]) for k in by if k[3] == 0 and (*k[:3], 1) in by]
    defaults = {r["point"]["seed"]: r for r in points.values() if r["point"]["kind"] == "default"}
    if 0 in defaults and 1 in defaults:
        pairs.append((("default", "lm", defaults[0]["training"]["tokens"], 0), defaults[0], defaults[1]))
    if not pairs:
        return ["4. **Seeds.** No second seed was run (see below)."]
    lines.append("4. **Seeds** (seed 1 re-orders the same windows; the default's seed also re-draws them): "
                 + "; ".join(f"{k[0]} / {LABELS.get(k[1], k[1])} at {k[2]:,} tokens: seed 0 {bpb(a):.4f}, seed 1 "
                             f"{bpb(b):.4f}, difference {bpb(b) - bpb(a):+.4f} {fmt_ci(*bpb_ci(b, a), 4)}"
                             for k, a, b in pairs) + ".")
    return lines


def defaults(points: dict[str, dict], acc: dict[str, dict]) -> list[str]:
    p = methods.create("streamline").params
    rows = _layer_s0(points)
    if not rows:
        return ["No trained point yet."]
    lines = [f"`methods/streamline.py` defaults: replacement `{p.replacement}`, objective `{p.objective}`, schedule "
             f"`{p.schedule}`, lr {p.lr:g}, {p.train_samples} windows of {p.train_seq_len} tokens "
             f"({p.train_samples * p.train_seq_len:,} tokens), training text `--train-data` (C4 in `bench run`).", ""]
    lines.append("Bits per byte per objective and budget (layer replacement, seed 0):")
    lines.append("")
    lines.append("| training tokens | " + " | ".join(LABELS.values()) + " |")
    lines.append("|---" * (1 + len(LABELS)) + "|")
    for tokens in design.BUDGETS:
        at = {r["point"]["objective"]: r for r in rows if r["point"]["tokens"] == tokens}
        if not at:
            continue
        low = min(at.values(), key=bpb)
        cells = [("**" if at[o] is low else "") + f"{bpb(at[o]):.4f}" + ("**" if at[o] is low else "")
                 if o in at else "—" for o in LABELS]
        lines.append(f"| {tokens:,} | " + " | ".join(cells) + " |")
    lines += ["", "(Bold: the lowest bits per byte at that budget, not a significance claim; the paired tests are "
              "in the answers above.)", ""]
    lines += _why(points, rows, p)
    return lines


def _vs_next(best: dict, rows: list[dict]) -> str:
    """The paired CI of `best` minus the next-lowest objective at the same budget, for a ranking sentence."""
    same = sorted((r for r in rows if r["point"]["tokens"] == best["point"]["tokens"] and r is not best), key=bpb)
    if not same:
        return ""
    lo, hi = bpb_ci(best, same[0])
    return (f"; minus {LABELS[same[0]['point']['objective']]}: {bpb(best) - bpb(same[0]):+.4f} {fmt_ci(lo, hi, 4)}, "
            + ("lower" if hi < 0 else "not distinguishable"))


def _why(points: dict[str, dict], rows: list[dict], p) -> list[str]:
    """Why the defaults are what they are, from the points."""
    none = points["none"]
    default_tokens = p.train_samples * p.train_seq_len
    small = [r for r in rows if r["point"]["tokens"] <= 2 * default_tokens]
    out = []
    if small:
        best = min(small, key=bpb)
        beats = sorted({LABELS[r["point"]["objective"]] for r in small if bpb_ci(r, none)[1] < 0})
        out.append(f"- Objective `{p.objective}`: at budgets up to twice the default's ({2 * default_tokens:,} tokens) "
                   f"the lowest bits per byte is {LABELS[best['point']['objective']]} ({bpb(best):.4f} at "
                   f"{best['point']['tokens']:,} tokens{_vs_next(best, rows)}), and the objectives that beat "
                   f"`none` there (paired CI below 0) are: {', '.join(beats) or 'none'}.")
    mse = sorted((r for r in rows if r["point"]["objective"] == "mse"), key=lambda r: r["point"]["tokens"])
    first = next((r for r in mse if bpb_ci(r, none)[1] < 0), None)
    if mse:
        out.append("- The paper's `mse` is a parameter (`objective=mse`), not the default: "
                   + (f"it first beats `none` at {first['point']['tokens']:,} tokens" if first else
                      "it never beats `none` in the budgets tried")
                   + f" (at {mse[0]['point']['tokens']:,} tokens it is {bpb(mse[0]) - bpb(none):+.3f} bits/byte "
                   "against `none`). Its loss (mean of the last 25 steps) falls from "
                   f"{mse[0]['training']['loss_last25']:,.0f} at {mse[0]['point']['tokens']:,} tokens to "
                   f"{mse[-1]['training']['loss_last25']:,.0f} at {mse[-1]['point']['tokens']:,}: the raw residual "
                   "stream's attention-sink position (over 99 % of the initial MSE) dominates it until the module "
                   "has learnt that position.")
    skip = sorted((r for r in rows if r["point"]["objective"] == "mse_skip1"), key=lambda r: r["point"]["tokens"])
    if len(skip) > 1:
        out.append("- `mse_skip_first=1` (the sink position left out) is a parameter for the record: "
                   + ", ".join(f"{bpb(r):.4f} at {r['point']['tokens']:,}" for r in skip)
                   + " tokens; it does not improve steadily with tokens. A likely reason, not tested here: "
                   "nothing constrains the module's output at position 0, which the later layers attend to.")
    costs = {r["point"]["objective"]: r["training"]["train_seconds"] / r["point"]["tokens"] for r in rows}
    if costs:
        out.append("- Training seconds per 1,000 tokens here (from the cached teacher states): "
                   + ", ".join(f"{LABELS[o]} {1000 * c:.2f}" for o, c in sorted(costs.items(), key=lambda kv: kv[1]))
                   + ". `Streamline.heal` computes the teacher on the fly (a dense forward per batch), so `mse` costs "
                   "a dense forward through the block per token there.")
    top = max((r["point"]["tokens"] for r in rows), default=0)
    best_top = min((r for r in rows if r["point"]["tokens"] == top), key=bpb, default=None)
    if best_top is not None:
        out.append(f"- Budget: {p.train_samples} windows of {p.train_seq_len} ({default_tokens:,} tokens) stays the "
                   "default: about a minute of CPU and inside the built-in C4 training range (406 windows of 256); "
                   f"the study shows quality keeps improving with tokens (lowest at {top:,} tokens: "
                   f"{LABELS[best_top['point']['objective']]} {bpb(best_top):.4f} bits/byte{_vs_next(best_top, rows)}), "
                   "so give `train_samples` "
                   "and a larger `--train-data` where there is compute.")
    return out


def missing(points: dict[str, dict], acc: dict[str, dict], jobs: list[dict]) -> list[str]:
    lines = []
    best = design.best_objective(points)
    for job in jobs:
        if job["kind"] == "best" and best is not None:
            job = design.best_run(job["what"], best)
        if job["kind"] == "train":
            want = [w * 256 for w in design.WINDOWS if w <= job["windows"]]
            have = [t for t in want if f"{job['replacement']}-{job['objective']}-{t // 1000}k-s{job['seed']}" in points]
            if len(have) < len(want):
                lines.append(f"- {job['name']}: reached {max(have, default=0):,} of {max(want):,} tokens.")
        elif job["kind"] == "best":
            kind = [r for r in trained(points) if (job["what"] == "seed1" and r["point"]["seed"] == 1)
                    or r["point"]["replacement"] == job["what"]]
            if not kind:
                lines.append(f"- {job['what']} at the best objective: not run before the deadline.")
        elif job["kind"] == "accuracy":
            if not job["of"].startswith("best-") and job["of"] not in acc:
                lines.append(f"- Accuracy of `{job['of']}`: not run before the deadline.")
        elif job["name"] not in points:
            lines.append(f"- `{job['name']}`: not run before the deadline.")
    if lines:
        lines.append("Each of these stopped at the session's deadline (`--deadline`: a run stops at its last budget "
                     "that fits, a job that would not fit is not started); the per-1,000-token costs under Defaults "
                     "give what the rest takes, and `run` resumes them (a run restarts from step 0 and skips the "
                     "budgets already written).")
    return lines or ["Nothing: every planned job ran."]


def compute(points: dict[str, dict], acc: dict[str, dict]) -> list[str]:
    rows = trained(points)
    teacher = max((r["training"]["teacher"]["seconds_this_process"] for r in rows), default=0.0)
    fpt = rows[0]["training"]["teacher"]["flops_per_token"] if rows else 0.0
    windows = max((r["point"]["windows"] for r in rows), default=0)
    lines = [f"Teacher states: one dense forward over {windows:,} windows ({windows * 256:,} tokens, "
             f"{fpt * windows * 256:.2e} FLOPs) paid once and shared by every run: about {teacher:.0f} s "
             "(the longest any one process spent on them; a restart reloads the saved chunks).", "",
             "Per point: `train s` is the run's cumulative training time up to that budget (a checkpoint's "
             "evaluation excluded), `FLOPs` = tokens x (2 x frozen + 6 x trainable-path matmul parameters), "
             "`bench.train`; `wall s` is the run's wall time up to the point, evaluations included.", "",
             "| point | train s | training FLOPs | wall s | accuracy s |", "|---|---|---|---|---|"]
    for n, r in sorted(points.items()):
        t = r.get("training") or {}
        secs = t.get("train_seconds", t.get("wall_seconds"))
        lines.append(f"| {n} | {'' if secs is None else f'{secs:.0f}'} | "
                     f"{'' if 'flops' not in t else format(t['flops'], '.2e')} | {r['wall_s']:.0f} | "
                     f"{'' if n not in acc else format(acc[n]['wall_s'], '.0f')} |")
    lines += ["", "Machine: 2 CPU cores (AMD EPYC with AVX512-BF16 / AMX), torch 2.13 CPU, bf16, quiet (this run "
              "alone on it, but for a few minutes of the teacher states). One run to 1.02 M tokens is the bulk of the cost; the page is regenerated from the "
              "points, so a longer session resumes where this one stopped."]
    return lines
