"""The Streamline study's page and figure, written from the points (and accuracy files) the run left.

Every number comes from <out>/points/*.json and <out>/accuracy/*.json. Intervals: bits per byte, 95 %
percentile bootstrap over documents (2,000 resamples; paired over the same documents for differences);
accuracy, Wilson 95 % intervals, and exact McNemar tests on the same documents for differences. A sentence
that says one point beats another rests on one of these paired tests; where it does not reject, the page
says "not distinguishable".

Shares its name with bench.cli.report: both write pages; this one writes the study's page.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from scripts.streamline_study import design
from scripts.streamline_study.answers import answers, compute, defaults, missing
from scripts.streamline_study.points import LABELS, accuracy_tests, bpb, bpb_ci, fmt_ci, load, trained

BASELINES = ("dense", "none", "shortgpt", "laco")


def diff_cell(rec: dict, base: dict | None) -> str:
    if base is None:
        return "—"
    lo, hi = bpb_ci(rec, base)
    verdict = "**lower**" if hi < 0 else ("higher" if lo > 0 else "not distinguishable")
    return f"{bpb(rec) - bpb(base):+.3f} {fmt_ci(lo, hi)} {verdict}"


def wilson(k: float, n: int, z: float = 1.96) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def mcnemar_cell(tests: dict, name: str, against: str, task: str) -> str:
    if (name, against, task) not in tests:
        return "—"
    m, p_holm = tests[(name, against, task)]
    diff = (m.only_a - m.only_b) / m.n
    verdict = ("**higher**" if diff > 0 else "lower") if p_holm < 0.05 else "not distinguishable"
    return (f"{100 * diff:+.1f} pts (p={m.p:.3g}, Holm {p_holm:.3g}, {m.only_a}/{m.only_b} discordant) "
            f"{verdict}")


def figure(points: dict[str, dict], path: Path) -> None:
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from bench.core.atomic import write_bytes

    fig = Figure(figsize=(7.2, 4.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    names = {"dense": "dense", "none": "none (block dropped)", "shortgpt": "ShortGPT", "laco": "LaCo"}
    styles = {"dense": ("black", ":"), "none": ("#7f7f7f", "--"), "shortgpt": ("#d62728", "--"),
              "laco": ("#9467bd", "--")}
    shown = [bpb(r) for n, r in points.items() if n != "laco"]
    top = max(shown) * 1.08
    for key, (color, ls) in styles.items():
        if key in points and bpb(points[key]) <= top:
            ax.axhline(bpb(points[key]), color=color, ls=ls, lw=1, label=names[key])
    if "laco" in points and bpb(points["laco"]) > top:
        ax.text(0.01, 0.98, f"LaCo: {bpb(points['laco']):.2f} (off scale)", transform=ax.transAxes, fontsize=7,
                va="top", color="#9467bd")
    colors = {"mse": "#1f77b4", "mse_skip1": "#17becf", "lm": "#2ca02c", "kd": "#ff7f0e"}
    rows = trained(points)
    for obj, color in colors.items():
        for repl, seed, marker, fill in (("layer", 0, "o", True), ("layer", 1, "o", False), ("mlp", 0, "s", True),
                                         ("ffn", 0, "^", True)):
            sel = [r for r in rows if r["point"]["objective"] == obj and r["point"]["replacement"] == repl
                   and r["point"]["seed"] == seed]
            if not sel:
                continue
            xs = [r["point"]["tokens"] * (1.04 if seed else 1) for r in sel]
            ys = [bpb(r) for r in sel]
            err = [bpb_ci(r) for r in sel]
            yerr = [[y - lo for y, (lo, _) in zip(ys, err, strict=True)], [hi - y for y, (_, hi) in zip(ys, err, strict=True)]]
            label = LABELS[obj] + (f", {repl}" if repl != "layer" else "") + (f", seed {seed}" if seed else "")
            ax.errorbar(xs, ys, yerr=yerr, color=color, marker=marker, mfc=color if fill else "white",
                        ls="-" if repl == "layer" and seed == 0 else "none", capsize=3, label=label)
    defaults = [r for r in points.values() if r["point"]["kind"] == "default"]
    if defaults:
        ax.plot([r["training"]["tokens"] for r in defaults], [bpb(r) for r in defaults], "*", color="#2ca02c",
                ms=11, mec="black", ls="none", label="method default (lm, official schedule)")
    ax.set_xscale("log")
    ax.set_ylim(min(shown) * 0.95, top)
    ax.set_xlabel("training tokens")
    ax.set_ylabel("bits per byte, held-out C4 (lower is better)")
    ax.set_title(f"SmolLM2-135M, {design.LAYERS} of 30 layers removed: LLM-Streamline replacement vs baselines",
                 fontsize=9)
    ax.legend(fontsize=6.5, loc="upper right", ncol=2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    write_bytes(path, buf.getvalue())


def write_report(out: Path, page: Path) -> None:
    from bench.core.atomic import write_text

    points, acc = load(out)
    if "dense" not in points or "none" not in points:
        raise SystemExit("the study has no dense / none points yet: run it first")
    fig = out / "figure.png"
    figure(points, fig)
    dense, none, short = points["dense"], points["none"], points.get("shortgpt")
    text = dense["evaluation_text"]
    rows = trained(points)
    data = next((r["training_data"] for r in rows), None)
    lines = [
        "# LLM-Streamline on SmolLM2-135M: does a trained replacement beat dropping the block?", "",
        "Generated by `python -m scripts.streamline_study report` from the points in "
        f"`{out.as_posix()}/points/` and `{out.as_posix()}/accuracy/` (one JSON each; `run` resumes). Model "
        f"SmolLM2-135M in {dense['dtype'].removeprefix('torch.')}, {design.LAYERS} of 30 decoder layers removed by "
        "every pruned point (25 % of the layers; Streamline's trained variants keep layer l and delete l+1..l+8).", "",
        f"**Held-out text**: {text['documents']} whole documents ({text['bytes']:,} UTF-8 bytes, {text['tokens']:,} "
        f"tokens) of the C4 sample's evaluation range (documents {text['document_range'][0]}.."
        f"{text['document_range'][1] - 1}: those of at most {design.EVAL_DOC_BYTES:,} bytes, in corpus order). "
        "Bits per byte = summed next-token NLL / (ln 2 x bytes); KL(dense || pruned) and top-1 agreement on the "
        "same tokens (`bench.evaluate.bits_per_byte`). Intervals: 95 % percentile bootstrap over documents (2,000 "
        "resamples), paired for differences, each a per-comparison interval, unadjusted: the bits-per-byte "
        "words (lower / higher / not distinguishable) say whether that one interval excludes 0. **Accuracy**: "
        "PIQA and ARC-Easy in full (lm-eval tasks, 0-shot, the prefix engine), Wilson 95 % intervals, exact "
        "McNemar tests for paired differences, Holm-adjusted over every accuracy comparison the page makes "
        "(each point against `none` and against ShortGPT, per task); the accuracy words follow the adjusted "
        "p-values.", ""]
    if data:
        src = data["sources"]
        lines += [
            f"**Training text**: the C4 sample's training range (documents {src['c4'][0]}..{src['c4'][1] - 1}) and "
            f"the Wikipedia sample's (documents {src['wikipedia'][0]}..{src['wikipedia'][1] - 1}) together, "
            f"{data['documents']:,} documents, {data['tokens']:,} tokens, {data['windows_per_epoch']:,} windows of "
            "256 per epoch; each epoch re-shuffles the documents under a new seed. The built-in samples hold no "
            f"more held-out text, so the budgets above {data['windows_per_epoch'] * 256:,} tokens repeat it "
            f"({design.BUDGETS[-1]:,} tokens = {design.BUDGETS[-1] / (data['windows_per_epoch'] * 256):.1f} "
            "epochs). Calibration: the Wikipedia sample's calibration range. Calibration, training and evaluation are disjoint by "
            "construction (`bench.data.splits`).", ""]
    lines += [
        f"**Training**: `bench.train.train`, AdamW, lr {design.SCHEDULE['lr']:g} held constant (no warm-up), "
        "batch 4 x 256 tokens, bf16 autocast with fp32 master weights. The official loop's effective schedule is 2e-4 "
        "decaying to 1.95e-4 after an 8 % warm-up (`bench.train.lr_lambda`), so this differs from it only by "
        "the warm-up; being constant, one run to the largest budget gives every smaller one exactly (the state "
        "after N tokens is the N-token run, `tests/test_train.py`). All objectives train from the dense teacher "
        "states cached once per window (`scripts/streamline_study/teacher.py`). The method defaults "
        "(`default-s*`) run `methods.create(\"streamline\")` itself: the official schedule, C4 training text.", "",
        f"![bits per byte against training tokens]({Path(os.path.relpath(fig, page.parent)).as_posix()})", "",
        "Error bars: each point's own 95 % bootstrap interval over the documents, which mostly shows how much the "
        "documents differ from each other. Whether two points differ is a paired question (the same documents), "
        "answered by the paired intervals in the tables: overlapping bars can still differ significantly.", "",
        "## Baselines (no training)", "",
        "| point | layers removed | bits/byte [95 % CI] | vs dense [paired CI] | KL to dense | top-1 agreement |",
        "|---|---|---|---|---|---|"]
    for key in BASELINES:
        if key not in points:
            lines.append(f"| {key} | — | not run (see below) | | | |")
            continue
        r = points[key]
        lo, hi = bpb_ci(r)
        lines.append(f"| {key} | {r.get('removed', [])} | {bpb(r):.4f} [{lo:.4f}, {hi:.4f}] | "
                     f"{diff_cell(r, dense) if key != 'dense' else ''} | {r['fidelity']['kl']:.3f} | "
                     f"{r['fidelity']['top1_agreement']:.3f} |")
    lines += ["", "## LLM-Streamline replacements: bits per byte", "",
              "| replacement | objective | seed | training tokens | epochs | bits/byte | vs none [paired CI] | "
              "vs ShortGPT [paired CI] | KL | top-1 | train s | training FLOPs |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows + [r for r in points.values() if r["point"]["kind"] == "default"]:
        pt, f, t = r["point"], r["fidelity"], r["training"]
        if pt["kind"] == "default":
            repl, obj, seed = "layer", "method default (lm, official schedule, C4)", pt["seed"]
            epochs, secs = "<1", t["wall_seconds"]
        else:
            repl, obj, seed = pt["replacement"], LABELS[pt["objective"]], pt["seed"]
            epochs, secs = f"{t['tokens'] / (r['training_data']['windows_per_epoch'] * 256):.2f}", t["train_seconds"]
        lines.append(f"| {repl} | {obj} | {seed} | {t['tokens']:,} | {epochs} | {bpb(r):.4f} | {diff_cell(r, none)} | "
                     f"{diff_cell(r, short)} | {f['kl']:.3f} | {f['top1_agreement']:.3f} | {secs:.0f} | {t['flops']:.2e} |")
    lines += ["", "## Accuracy: PIQA and ARC-Easy, every document", ""]
    lines += accuracy_table(acc, points)
    lines += ["", "## Answers", ""]
    lines += answers(points, acc)
    lines += ["", "## Defaults", ""]
    lines += defaults(points, acc)
    lines += ["", "## Not done in this session", ""]
    lines += missing(points, acc, design.jobs())
    lines += ["", "## Compute", ""]
    lines += compute(points, acc)
    write_text(page, "\n".join(lines) + "\n")


def accuracy_table(acc: dict[str, dict], points: dict[str, dict]) -> list[str]:
    if not acc:
        return ["No accuracy run yet."]
    tasks = design.ACC_TASKS
    lines = ["| point | " + " | ".join(f"{t} [95 % CI]" for t in tasks) + " | "
             + " | ".join(f"{t} vs none" for t in tasks) + " | " + " | ".join(f"{t} vs ShortGPT" for t in tasks)
             + " |", "|---" * (1 + 3 * len(tasks)) + "|"]
    order = [n for n in BASELINES if n in acc] + sorted(n for n in acc if n not in BASELINES)
    tests = accuracy_tests(acc)
    for n in order:
        a = acc[n]
        cells = []
        for t in tasks:
            s = a["tasks"][t]
            k = sum(a["per_document"][t])
            lo, hi = wilson(k, len(a["per_document"][t]))
            cells.append(f"{s['metric']} {k / len(a['per_document'][t]):.4f} [{lo:.3f}, {hi:.3f}] (n={s['n']})")
        vs_none = [mcnemar_cell(tests, n, "none", t) if n != "none" else "" for t in tasks]
        vs_short = [mcnemar_cell(tests, n, "shortgpt", t) if n != "shortgpt" else "" for t in tasks]
        lines.append(f"| {n} | " + " | ".join(cells + vs_none + vs_short) + " |")
    return lines
