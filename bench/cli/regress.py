"""`bench regress`: compare a result store with a baseline; exit 1 on any change beyond tolerance.

Shares its name with bench.results.regress: the module of the `bench regress` subcommand (CLI modules are named after their command).
"""

from __future__ import annotations

import sys

from bench.cli.edge import add_command, add_store_option, check_store_input


def register(subparsers) -> None:
    p = add_command(
        subparsers, "regress", help="compare a result store with a baseline (exit 1 on a change, better or worse)",
        description="Compare every baseline cell with the store's newest record of that cell, in both directions. "
                    "Per document: answers that flipped and per-choice log-likelihoods that drifted by more than "
                    "--loglik nats (evaluation on fixed documents is deterministic); perplexity NLL, bits per byte "
                    "and KL to dense beyond absolute tolerances; the decode speed-up's 95 % interval disjoint "
                    "from the baseline's; a baseline cell missing, failed, or run under other settings. Exit 1 "
                    "when there is any change (an unexpected improvement needs a new baseline too), else 0. "
                    "--update-baseline writes the baseline from the store instead. A cell run under other settings "
                    "names each one that differs (`limit: 50 → 100`, `subset: first → random`); a cell missing "
                    "under other method parameters names them (`streamline.objective: mse → lm`).",
        epilog="examples:\n  bench regress --baseline reports/baseline.json --store reports/store\n"
               "  bench regress --store store --skip latency            # on a shared or busy machine\n"
               "  bench regress --store store --update-baseline --baseline my-baseline.json")
    p.add_argument("--baseline", default="reports/baseline.json", help="baseline JSON (default reports/baseline.json)")
    add_store_option(p)
    p.add_argument("--update-baseline", action="store_true", help="write the baseline from the store and exit 0")
    p.add_argument("--loglik", type=tolerance, default=0.01, help="per-choice log-likelihood drift allowed, nats (0.01)")
    p.add_argument("--acc-points", type=tolerance, default=1.0,
                   help="accuracy change allowed for cells without per-sample records, points (default 1)")
    p.add_argument("--nll", type=tolerance, default=0.01, help="perplexity NLL change allowed, nats/token (0.01)")
    p.add_argument("--bpb", type=tolerance, default=0.005, help="bits-per-byte change allowed (0.005)")
    p.add_argument("--kl", type=tolerance, default=0.005, help="KL-to-dense change allowed, nats/token (0.005)")
    p.add_argument("--latency-pct", type=tolerance, default=15.0,
                   help="speed-up change allowed where there are no intervals, %% (default 15)")
    p.add_argument("--skip", action="append", default=[], metavar="KIND",
                   help="leave a kind of metric out (repeatable), e.g. latency on shared runners; kinds: the "
                        "declared metrics' groups (accuracy, perplexity, latency, ...)")
    p.add_argument("--allow-missing", action="store_true", help="baseline cells absent from the store are not errors")
    p.add_argument("--force", action="store_true",
                   help="with --update-baseline: also replace a --baseline file that is not a baseline (by default "
                        "only a baseline is replaced)")
    p.set_defaults(func=run, kept="the store is untouched; the baseline file is unchanged")


def tolerance(text: str) -> float:
    """A tolerance: a finite number >= 0 (NaN would switch a check off: every comparison with it is false)."""
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a tolerance: give a finite number >= 0, e.g. 0.01")
    return value


def _value(name: str, x: float | None) -> str:
    from bench.metrics import metric_for

    if x is None:
        return "–"
    if name.startswith("answers/"):
        return f"{100 * x:.1f}"
    metric = metric_for(name)
    return metric.show(x) if metric is not None else f"{x:.4g}"


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from bench.core.pathcheck import writable_file
    from bench.results import regress

    check_store_input(args.store)
    if args.update_baseline:
        writable_file(args.baseline, "--baseline")
        regress.check_replaceable(args.baseline, force=args.force)
    console = Console() if sys.stdout.isatty() else Console(width=180)
    if args.update_baseline:
        baseline = regress.write_baseline(args.store, args.baseline)
        n = sum(len(c["metrics"]) + len(c["answers"]) for c in baseline["cells"])
        console.print(f"wrote {args.baseline}: {len(baseline['cells'])} cells, {n} metrics and per-task answer sets")
        return 0
    tol = regress.Tolerances(args.loglik, args.acc_points, args.nll, args.bpb, args.kl, args.latency_pct)
    known = regress.metric_kinds()
    unknown = [k for k in args.skip if k not in known]
    if unknown:
        from bench.core.errors import ConfigError

        raise ConfigError(f"--skip {unknown[0]}: no such kind of metric", f"kinds: {', '.join(known)}")
    kinds = frozenset(set(known) - set(args.skip))
    result = regress.compare(regress.load_baseline(args.baseline), args.store, tol, args.allow_missing, kinds)
    summary = (f"{result.compared} metrics and answer sets of {result.cells} cells compared with {args.baseline}"
               + (f"; {result.new_cells} store cell(s) not in the baseline" if result.new_cells else ""))
    if result.context_changes:
        summary += "; compared cells ran with other " + "; ".join(sorted(result.context_changes))
    if not result.findings:
        console.print(f"no changes: {summary}")
        return 0
    better = len(result.findings) - len(result.worse)
    table = Table(title=f"{len(result.findings)} change(s): {len(result.worse)} regression(s) or unexplained, "
                        f"{better} improvement(s) (a new baseline is needed for those)")
    for col in ("model", "method", "budget", "metric", "kind", "direction", "baseline", "current", "change", "allowed"):
        table.add_column(col, justify="right" if col in ("baseline", "current", "change") else "left")
    for f in result.findings:
        table.add_row(f.model, f.method, f.budget, f.metric, f.kind, f.direction or "-", _value(f.metric, f.baseline),
                      _value(f.metric, f.current), f.change, f.allowed)
    console.print(table)
    console.print(summary)
    return 1
