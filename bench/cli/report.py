"""`bench report`: write the pages and figures of a result store (runs no model); by default beside the
store (`<store>/reports`), so the committed `reports/` changes only when asked for with `--out reports`."""

from __future__ import annotations

from bench.cli.edge import add_command, add_store_option, check_store_input


def register(subparsers) -> None:
    p = add_command(
        subparsers, "report", help="write the leaderboard, paper tables and figures from a result store",
        description="Write leaderboard.md, paper-tables.md and figures/*.png into --out from the records of "
                    "--store. A pure function of the store: no model runs, torch is not imported, and the "
                    "same store gives byte-identical markdown.")
    add_store_option(p)
    p.add_argument("--out", help="output folder (default: <store>/reports, beside the records; the committed "
                                 "pages: --store reports/store --out reports)")
    p.add_argument("--no-figures", action="store_true", help="write the markdown only")
    p.add_argument("--plan", metavar="RUN",
                   help="the run the store is meant to hold, a preset name or a run YAML (as `bench run` takes them): "
                        "the pages list its cells the store lacks (expanding it imports the methods and torch)")
    p.add_argument("--force", action="store_true",
                   help="replace leaderboard.md, paper-tables.md or figures/ in --out even when `bench report` did "
                        "not write them (by default only its own pages are replaced)")
    p.set_defaults(func=run, kept="the store is untouched; pages already rewritten are complete, the others unchanged")


def run(args) -> int:
    from bench import report
    from bench.core.pathcheck import no_empty_leftovers, writable_folder

    check_store_input(args.store)
    plan = planned(args.plan) if args.plan else None  # a bad preset or file fails here, before anything is written
    out = args.out or report.default_out(args.store)
    writable_folder(out, "--out")
    report.check_out(out, force=args.force)
    with no_empty_leftovers(out):
        written = report.render(args.store, out, figures=not args.no_figures, plan=plan)
    pages = [p for p in written if p.suffix == ".md"]
    print(f"wrote {', '.join(str(p) for p in pages)} and {len(written) - len(pages)} figure(s)")
    return 0


def planned(run: str):
    """The matrix of a preset or run file as plain cells for bench.report.coverage."""
    from pathlib import Path

    from bench.report.coverage import plan_of
    from bench.run import cells, config

    is_file = run.endswith((".yaml", ".yml")) or Path(run).is_file()
    if is_file:
        from bench.core.pathcheck import readable_file

        readable_file(run, "--plan", "run YAML")
    spec = config.resolve({}, yaml_path=run) if is_file else config.resolve({"preset": run})
    return plan_of(run, [{"key": c.key, "model": c.model, "method": c.method, "ratio": c.ratio, "layers": c.layers,
                          "seed": c.seed} for c in cells.expand(spec)])
