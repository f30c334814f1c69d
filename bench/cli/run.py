"""`bench run`: the benchmark matrix (models x methods x budgets x seeds + dense), resumable, into a store."""

from __future__ import annotations

import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run", help="run the benchmark matrix into a result store (resumable)",
        description="Run models x methods x budgets x seeds (plus one dense cell per model) and record every "
                    "cell in the store. Finished cells are skipped on a rerun. Without options: the `quick` "
                    "preset (SmolLM2-135M, every method, ratios 0.125 and 0.25, a CPU-sized suite). "
                    "Precedence: preset < --config YAML < options.")
    m = p.add_argument_group("matrix")
    m.add_argument("--models", help="comma-separated zoo names, hub ids or local folders")
    m.add_argument("--methods", help="comma-separated method names, or all (see `bench ls methods`)")
    budget = m.add_mutually_exclusive_group()
    budget.add_argument("--ratios", help="comma-separated parameter ratios in (0, 1), e.g. 0.125,0.25")
    budget.add_argument("--layers", help="comma-separated layer counts to remove, e.g. 4 or 2,4")
    m.add_argument("--seed", help="seed, or comma-separated seeds (calibration sampling, random methods)")
    m.add_argument("--param", action="append", metavar="METHOD.NAME=VALUE",
                   help="a method parameter, e.g. laco.threshold=0.3 (repeatable)")
    e = p.add_argument_group("evaluation")
    e.add_argument("--tasks", help="comma-separated tasks (see `bench ls tasks`), or none")
    e.add_argument("--limit", help="N documents per task (a seeded random subset; see --subset), or none for all")
    e.add_argument("--subset", choices=["random", "first"],
                   help="which N documents --limit takes: a seeded random subset (default) or the first N")
    e.add_argument("--subset-seed", type=int, help="seed of the random document subset (default 0)")
    e.add_argument("--engine", choices=["prefix", "lm-eval"],
                   help="accuracy scoring: prefix (default; shared contexts and the dense model's layer states, "
                        "same numbers) or lm-eval's HFLM")
    e.add_argument("--num-fewshot", type=int, help="few-shot examples (default 0)")
    e.add_argument("--batch-size", type=int, help="evaluation batch size")
    e.add_argument("--ppl", help="perplexity corpora: wikipedia, c4, a .txt path (comma-separated), or none")
    e.add_argument("--calib", help="calibration text: wikipedia, c4, or a .txt/.jsonl path")
    e.add_argument("--calib-samples", type=int, help="calibration windows")
    r = p.add_argument_group("run")
    r.add_argument("--preset", help="quick (default), standard, paper or nightly")
    r.add_argument("--config", help="a YAML run file (keys as in the presets; unknown keys are errors)")
    r.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    r.add_argument("--dtype", help="auto, bfloat16, float32 or float16")
    r.add_argument("--executor", choices=["local", "slurm"], help="in-process (default) or one Slurm job per cell")
    r.add_argument("--store", help="result store folder (default ./store)")
    r.add_argument("--force", action="store_true", help="recompute cells already in the store")
    r.add_argument("--plain", action="store_true", help="plain log lines instead of progress bars")
    r.add_argument("--reports", "--report-dir", dest="report_dir", metavar="DIR",
                   help="where the report pages go after the run (default: <store>/reports, beside the records)")
    r.add_argument("--no-report", action="store_true", help="do not regenerate the report pages after the run")
    s = p.add_argument_group("slurm (with --executor slurm)")
    s.add_argument("--partition", help="Slurm partition")
    s.add_argument("--gpus-per-cell", type=int, help="GPUs per cell job (default 1)")
    s.add_argument("--time-min", type=int, help="time limit per cell job, minutes (default 120)")
    s.add_argument("--cpus-per-cell", type=int, help="CPUs per cell job (default 8)")
    s.add_argument("--mem-gb", type=int, help="memory per cell job, GB (default 64)")
    p.set_defaults(func=run)


def run(args) -> int:
    import importlib.util
    import os

    from bench import config

    spec = config.from_cli(args)  # bad options, YAML and keys fail here, before anything is imported or written
    os.environ.setdefault("TQDM_DISABLE", "1")  # third-party bars would tear ours; progress is ours
    if not args.verbose:  # lm-eval warns on every model-object evaluation; that is our normal path
        import logging

        logging.getLogger("lm_eval").setLevel(logging.ERROR)

    from rich.console import Console

    from bench import runner
    from bench.cli import progress

    observer = progress.PlainObserver() if args.plain or progress.wants_plain() else progress.RichObserver()
    with observer:
        outcome = runner.run(spec, observer)
    console = Console() if sys.stdout.isatty() else Console(width=160)
    records = [outcome.records[c.key] for c in outcome.cells]
    progress.summary(records, console, title=f"leaderboard ({spec.store})")
    console.print(f"{len(outcome.computed)} cells computed, {len(outcome.skipped)} skipped (already stored) "
                  f"in {outcome.seconds:.1f} s; store: {os.path.abspath(spec.store)}")
    if not args.no_report and importlib.util.find_spec("bench.report") is not None:
        try:
            from bench import report

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
