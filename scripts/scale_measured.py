"""Compare two `bench run` stores of the same spec, one in memory and one under --max-memory, cell by cell:
accuracy, every per-choice log-likelihood, perplexity, fidelity, stability, the stage timings, and (from
`/usr/bin/time -v` logs) wall time and peak RSS. Writes reports/scale-measured.json (read by scale_plan.py).

    PYTHONPATH=. python scripts/scale_measured.py STORE_MEM TIME_LOG_MEM STORE_CAP TIME_LOG_CAP --cap cpu=2GiB

A run that did not finish (killed, say) still gives its time log and whatever cells it stored; `--note` says
what happened, in words, on the page.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _time_log(path: Path) -> dict:
    text = path.read_text(errors="replace")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    seconds = None
    if wall:
        parts = [float(x) for x in wall.group(1).split(":")]
        seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    killed = re.search(r"Command terminated by signal (\d+)", text)
    return {"wall_s": seconds, "peak_rss_bytes": int(rss.group(1)) * 1024 if rss else None,
            "finished": "Exit status: 0" in text and not killed,
            "killed_by_signal": int(killed.group(1)) if killed else None}


_ACC = re.compile(r"^(\d\d:\d\d:\d\d) INFO bench\.evaluate\.(?:accuracy|multiple_choice): accuracy on (\w+) in ([\d.]+) s: \w+ (\w+) ([\d.]+)")
_PPL = re.compile(r"^(\d\d:\d\d:\d\d) INFO bench\.evaluate\.(?:perplexity|windowed_perplexity): (\S+) perplexity ([\d.]+) over (\d+) tokens.* in "
                  r"([\d.]+) s")
_FID = re.compile(r"^(\d\d:\d\d:\d\d) INFO bench\.evaluate\.(?:fidelity|bits_per_byte): (\w+): ([\d.]+) bits/byte over \d+ documents "
                  r"\((\d+) tokens.* in ([\d.]+) s")
_LOAD = re.compile(r"INFO bench.models.zoo: loaded \S+ \(.*\) in ([\d.]+) s")


def _stages(log: Path) -> dict[str, dict]:
    """What a run's log says it finished, stage by stage (scores as logged, seconds): the dense cell's stages
    of a run that was stopped before its record was written."""
    out = {}
    for line in log.read_text(errors="replace").splitlines():
        if m := _LOAD.search(line):
            out["load"] = {"seconds": float(m.group(1))}
        elif m := _ACC.search(line):
            out[f"accuracy {m.group(2)}"] = {"seconds": float(m.group(3)), "metric": m.group(4),
                                             "value": float(m.group(5))}
        elif m := _FID.search(line):
            out[f"fidelity {m.group(2)}"] = {"seconds": float(m.group(5)), "metric": "bits/byte",
                                             "value": float(m.group(3)), "tokens": int(m.group(4))}
        elif m := _PPL.search(line):
            out[f"perplexity {m.group(2)}"] = {"seconds": float(m.group(5)), "metric": "perplexity",
                                               "value": float(m.group(3)), "tokens": int(m.group(4))}
    return out


def _cells(store: Path) -> dict[str, dict]:
    out = {}
    for rec_path in sorted(store.glob("cells/*/record.json")) if store.exists() else []:
        rec = json.loads(rec_path.read_text())
        if rec.get("status") != "ok":
            continue
        label = rec["cell"]["label"].split(" · ", 1)[1]
        samples = rec_path.parent / "samples.jsonl"
        lls = [ll for line in samples.read_text().splitlines() for ll in json.loads(line)["loglik"]] \
            if samples.exists() else []
        acc = rec.get("accuracy") or {}
        out[label] = {
            "accuracy": {t: v["score"] for t, v in (acc.get("tasks") or {}).items()},
            "logliks": lls,
            "perplexity": [p["perplexity"] for p in rec.get("perplexity") or []],
            "fidelity": rec.get("fidelity") and [{k: f.get(k) for k in ("bits_per_byte", "kl_to_dense", "top1_agreement")}
                                                 for f in (rec["fidelity"] if isinstance(rec["fidelity"], list)
                                                           else [rec["fidelity"]])],
            "stability": (rec.get("stability") or {}).get("mean"),
            "removed": (rec.get("pruning") or {}).get("removed_layers"),
            "timings": rec.get("timings"),
        }
    return out


LOGLIK_TOL = 1e-4    # nats, per choice
MEASURE_TOL = 1e-5   # relative: perplexity, bits per byte, KL to dense, stability


def _rel(x, y) -> float | None:
    if x is None or y is None:
        return None if (x is None) != (y is None) else 0.0
    return abs(x - y) / max(abs(x), abs(y), 1e-12)


def _measure_diffs(a: dict, b: dict) -> dict[str, float | None]:
    """The largest relative difference between the two runs' perplexity, bits per byte, KL to dense and
    stability (None: one run has the measure and the other not)."""
    out = {"perplexity": max((_rel(x, y) for x, y in zip(a["perplexity"], b["perplexity"], strict=True)),
                             default=0.0) if len(a["perplexity"]) == len(b["perplexity"]) else None,
           "stability": _rel(a["stability"], b["stability"])}
    fa, fb = a["fidelity"] or [], b["fidelity"] or []
    for key in ("bits_per_byte", "kl_to_dense"):
        out[key] = max((_rel(x.get(key), y.get(key)) or 0.0 for x, y in zip(fa, fb, strict=True)), default=0.0) \
            if len(fa) == len(fb) else None
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("store_mem", type=Path)
    p.add_argument("log_mem", type=Path)
    p.add_argument("store_cap", type=Path)
    p.add_argument("log_cap", type=Path)
    p.add_argument("--cap", required=True)
    p.add_argument("--model", default="qwen2.5-coder-1.5b")
    p.add_argument("--note", default="", help="what happened to the runs, in words, for the page")
    args = p.parse_args()
    mem, cap = _cells(args.store_mem), _cells(args.store_cap)
    both = [c for c in mem if c in cap]
    rows = {}
    for cell in both:
        a, b = mem[cell], cap[cell]
        diff = max((abs(x - y) for x, y in zip(a["logliks"], b["logliks"], strict=True)), default=None)
        measures = _measure_diffs(a, b)
        rows[cell] = {"in_memory": {k: v for k, v in a.items() if k != "logliks"},
                      "capped": {k: v for k, v in b.items() if k != "logliks"},
                      "logliks": len(a["logliks"]), "max_abs_loglik_diff": diff,
                      "max_rel_measure_diff": measures,
                      "same": a["accuracy"] == b["accuracy"] and a["removed"] == b["removed"] and diff is not None
                      and diff <= LOGLIK_TOL and all(v is not None and v <= MEASURE_TOL for v in measures.values())}
    out = {"model": args.model, "cap": args.cap, "in_memory_run": _time_log(args.log_mem),
           "capped_run": _time_log(args.log_cap), "cells": rows, "note": args.note,
           "stages": {"in_memory": _stages(args.log_mem), "capped": _stages(args.log_cap)},
           "only_in_memory": {c: mem[c] | {"logliks": len(mem[c]["logliks"])} for c in mem if c not in cap},
           "only_capped": {c: cap[c] | {"logliks": len(cap[c]["logliks"])} for c in cap if c not in mem}}
    im, cp = out["in_memory_run"], out["capped_run"]
    def run(r):
        if r["wall_s"] is None or r["peak_rss_bytes"] is None:
            return "no time log (still running?)"
        state = "finished" if r["finished"] else f"stopped (signal {r['killed_by_signal']})"
        return f"wall {r['wall_s']:.0f} s, peak RSS {r['peak_rss_bytes'] / 2**30:.2f} GiB, {state}"

    out["summary"] = (f"{args.model} in memory: {run(im)}; under --max-memory {args.cap}: {run(cp)}; "
                      f"{len(rows)} cells in both, {sum(r['same'] for r in rows.values())} with equal accuracy and removed "
                      f"layers, every per-choice log-likelihood within {LOGLIK_TOL:g} nats and perplexity, bits per "
                      f"byte, KL to dense and stability within {MEASURE_TOL:g} relative. {args.note}".strip())
    (ROOT / "reports/scale-measured.json").write_text(json.dumps(out, indent=1) + "\n")
    print(out["summary"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
