"""`bench regress`: compare a result store with a baseline; exit 1 on any regression."""

from __future__ import annotations

import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "regress", help="compare a result store with a baseline (exit 1 on a regression)",
        description="Compare every baseline cell's metrics with the store's newest record of that cell. "
                    "Regressions: accuracy down by more than --acc-points points AND --acc-stderr baseline "
                    "stderrs; perplexity up by more than --ppl-pct %; prefill or decode slower by more than "
                    "--latency-pct %; a baseline cell missing, failed, or run under other settings. Exit 1 when "
                    "there is any, else 0. --update-baseline writes the baseline from the store instead.")
    p.add_argument("--baseline", default="reports/baseline.json", help="baseline JSON (default reports/baseline.json)")
    p.add_argument("--store", default="store", help="result store folder (default ./store)")
    p.add_argument("--update-baseline", action="store_true", help="write the baseline from the store and exit 0")
    p.add_argument("--acc-points", type=float, default=1.0, help="accuracy drop allowed, in points (default 1)")
    p.add_argument("--acc-stderr", type=float, default=2.0,
                   help="accuracy drop allowed, in baseline stderrs (default 2); both must be exceeded")
    p.add_argument("--ppl-pct", type=float, default=3.0, help="perplexity rise allowed, %% (default 3)")
    p.add_argument("--latency-pct", type=float, default=15.0, help="slow-down allowed, %% (default 15)")
    p.add_argument("--skip", action="append", default=[], metavar="KIND",
                   help="leave a kind of metric out (repeatable), e.g. latency on shared runners; kinds: the "
                        "declared metrics' groups (accuracy, perplexity, latency, ...)")
    p.add_argument("--allow-missing", action="store_true", help="baseline cells absent from the store are not errors")
    p.set_defaults(func=run)


def _value(name: str, x: float | None) -> str:
    from bench.metrics import metric_for

    metric = metric_for(name)
    if x is None:
        return "–"
    return metric.show(x) if metric is not None else f"{x:.2f}"


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from bench import regress

    console = Console() if sys.stdout.isatty() else Console(width=160)
    if args.update_baseline:
        baseline = regress.write_baseline(args.store, args.baseline)
        n = sum(len(c["metrics"]) for c in baseline["cells"])
        console.print(f"wrote {args.baseline}: {len(baseline['cells'])} cells, {n} metrics")
        return 0
    tol = regress.Tolerances(args.acc_points, args.acc_stderr, args.ppl_pct, args.latency_pct)
    known = regress.metric_kinds()
    unknown = [k for k in args.skip if k not in known]
    if unknown:
        from bench.errors import ConfigError

        raise ConfigError(f"--skip {unknown[0]}: no such kind of metric", f"kinds: {', '.join(known)}")
    kinds = frozenset(set(known) - set(args.skip))
    result = regress.compare(regress.load_baseline(args.baseline), args.store, tol, args.allow_missing, kinds)
    summary = (f"{result.compared} metrics of {result.cells} cells compared with {args.baseline}"
               + (f"; {result.new_cells} store cell(s) not in the baseline" if result.new_cells else ""))
    if not result.findings:
        console.print(f"no regressions: {summary}")
        return 0
    table = Table(title=f"{len(result.findings)} regression(s)")
    for col in ("model", "method", "budget", "metric", "baseline", "current", "change", "allowed"):
        table.add_column(col, justify="right" if col in ("baseline", "current", "change") else "left")
    for f in result.findings:
        table.add_row(f.model, f.method, f.budget, f.metric if f.kind not in ("missing", "failed", "settings")
                      else f"{f.kind}", _value(f.metric, f.baseline), _value(f.metric, f.current), f.change,
                      f.allowed)
    console.print(table)
    console.print(summary)
    return 1
