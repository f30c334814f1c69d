"""`bench run`: the benchmark matrix (models x methods x budgets x seeds + dense), resumable, into a store."""

from __future__ import annotations

import sys

from bench.cli.edge import add_command


def register(subparsers) -> None:
    p = add_command(
        subparsers, "run", help="run the benchmark matrix into a result store (resumable)",
        description="Run models x methods x budgets x seeds (plus one dense cell per model) and record every "
                    "cell in the store. Finished cells are skipped on a rerun. Without options: the `quick` "
                    "preset (SmolLM2-135M, six methods that each plan within a CPU minute, ratios 0.125 and 0.25, a CPU-sized suite). "
                    "Precedence: preset < --config YAML < options.",
        epilog="examples:\n"
               "  bench run                                         # the quick preset: 13 cells, ~9 min on 2 cores\n"
               "  bench run --methods shortgpt,last --ratios 0.25 --limit 20    # a small run\n"
               "  bench run --only accuracy --tasks piqa,arc_easy   # accuracy alone\n"
               "  bench run --methods laco --param threshold=0.3    # a method parameter (bench show laco)\n"
               "  bench run --include-path plugins/ --methods mine  # your own pruner (.py) or lm-eval task YAML\n"
               "  bench run --preset standard --executor slurm --partition gpu\n"
               "presets: quick (default), standard, paper, nightly (bench/presets.yaml)")
    from bench.cli.options import add_cli_options

    groups = {"matrix": p.add_argument_group("matrix"), "evaluation": p.add_argument_group("evaluation"),
              "run": p.add_argument_group("run"), "slurm": p.add_argument_group("slurm (with --executor slurm)")}
    add_cli_options(p, groups)  # the spec's options, each stated once on its field (bench/run/spec.py)
    groups["matrix"].add_argument("--param", action="append", metavar="METHOD.NAME=VALUE",
                                  help="a method parameter, e.g. laco.threshold=0.3, or NAME=VALUE when the run has "
                                       "one method (repeatable; see `bench show METHOD`)")
    which = groups["evaluation"].add_mutually_exclusive_group()
    which.add_argument("--skip", metavar="KINDS",
                       help="evaluations to leave out, comma-separated: accuracy, stability, perplexity, fidelity, "
                            "latency (e.g. --skip latency,fidelity)")
    which.add_argument("--only", metavar="KINDS", help="run only these evaluations (e.g. --only accuracy)")
    r = groups["run"]
    r.add_argument("--config", help="a YAML run file (keys as in the presets; unknown keys are errors)")
    r.add_argument("--plain", action="store_true", help="plain log lines instead of progress bars")
    r.add_argument("--reports", "--report-dir", dest="report_dir", metavar="DIR",
                   help="where the report pages go after the run (default: <store>/reports, beside the records)")
    r.add_argument("--no-report", action="store_true", help="do not regenerate the report pages after the run")
    r.add_argument("--dry-run", action="store_true",
                   help="print the cells that would run, those already stored and those that would reuse another "
                        "cell's evaluation, with an estimated time on this machine; compute and write nothing")
    p.set_defaults(func=run, kept="every cell finished before is in the store; the run resumes where it stopped")


def run(args) -> int:
    import os

    from bench.cli import options

    spec = options.from_cli(args)  # bad options, YAML and keys fail here, before anything is imported or written
    if args.dry_run:
        return dry_run(spec)
    if not args.no_report and args.report_dir:  # the default, <store>/reports, is checked with the store
        from bench.core.pathcheck import writable_folder

        writable_folder(args.report_dir, "--reports")
    if not args.no_report:
        from bench import report

        report.check_out(args.report_dir or report.default_out(spec.store), option="--reports")
    os.environ.setdefault("TQDM_DISABLE", "1")  # third-party bars would tear ours; progress is ours
    if not args.verbose:  # lm-eval warns on every model-object evaluation; that is our normal path
        import logging

        logging.getLogger("lm_eval").setLevel(logging.ERROR)

    from rich.console import Console

    from bench.cli import progress
    from bench.run import runner

    observer = progress.PlainObserver() if args.plain or progress.wants_plain() else progress.RichObserver()
    with observer:
        outcome = runner.run(spec, observer)
    console = Console() if sys.stdout.isatty() else Console(width=160)  # a log or pipe: wider rows
    try:
        progress.headline_summary(spec.store, [c.key for c in outcome.cells], console)
    except Exception as exc:  # noqa: BLE001 - a summary problem must not hide the run's results
        print(f"warning: the closing table failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    console.print(f"{len(outcome.computed)} cells computed, {len(outcome.skipped)} skipped (already stored) "
                  f"in {outcome.seconds:.1f} s; store: {os.path.abspath(spec.store)}")
    if not args.no_report:
        try:
            written = report.render(spec.store, args.report_dir or report.default_out(spec.store))
            console.print(f"report: {', '.join(str(p) for p in written if p.suffix == '.md')}")
        except Exception as exc:  # a report problem must not hide the run's results
            print(f"warning: the report generator failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    if outcome.failures:
        print(f"{len(outcome.failures)} cell(s) failed:", file=sys.stderr)
        for record in outcome.failures:
            err = record.get("error") or {}
            print(f"  {record['cell']['label']}: {err.get('type')}: {err.get('message')} "
                  f"(cells/{record['key']}/record.json)", file=sys.stderr)
        return 1
    return 0


def dry_run(spec) -> int:
    """`bench run --dry-run`: the plan and its estimate (validated like a run; nothing is loaded or written)."""
    from bench.run import estimate, runner

    runner.validate(spec)
    planned = estimate.plan(spec)
    for line in planned.lines():
        print(line)
    print(planned.summary())
    return 0
