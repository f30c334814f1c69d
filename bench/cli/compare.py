"""`bench compare STORE_A STORE_B`: the cells both stores hold, with paired differences (bench.report.stores).

Shares its name with bench.stats.compare: the module of the `bench compare` subcommand (CLI modules are named after their command).
"""

from __future__ import annotations

import sys

from bench.cli.edge import add_command


def register(subparsers) -> None:
    p = add_command(
        subparsers, "compare", help="compare two result stores cell by cell (paired differences)",
        description="For every cell both stores hold (same model, method, parameters, budget, seed): Avg accuracy "
                    "under each, the paired difference A − B on the documents both scored (95 % bootstrap "
                    "interval, Holm-adjusted sign-flip p), bits per byte and decode speed-up under each, and the "
                    "evaluation settings that differ. Runs no model. Stores merge by copying cell folders "
                    "(cells/<key>/) into one store, then `bench report`.",
        epilog="example: bench compare store-before store-after")
    p.add_argument("store_a", metavar="STORE_A", help="the first result store (A)")
    p.add_argument("store_b", metavar="STORE_B", help="the second result store (B)")
    p.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    p.set_defaults(func=run, kept="both stores are untouched")


def run(args) -> int:
    from bench.core.errors import BenchError
    from bench.core.pathcheck import readable_folder
    from bench.report.stores import compare_stores, rows

    for store, what in ((args.store_a, "STORE_A"), (args.store_b, "STORE_B")):
        readable_folder(store, what, "result store")
    result = compare_stores(args.store_a, args.store_b)
    if not result.pairs:
        raise BenchError(f"no cell is in both {args.store_a} and {args.store_b}",
                         "compare stores of the same models, methods and budgets")
    header, table_rows = rows(result)
    if args.json:
        import json

        print(json.dumps([dict(zip(header, r, strict=True)) for r in table_rows], indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)
    table = Table(title=f"{len(result.pairs)} cells in both stores (A = {args.store_a}, B = {args.store_b})")
    for i, col in enumerate(header):
        table.add_column(col, justify="left" if i in (0, len(header) - 1) else "right", no_wrap=i == 0)
    for row in table_rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"only in A: {result.only_a} cell(s); only in B: {result.only_b}; * Holm-adjusted p < 0.05 over "
                  f"the {sum(p.diff is not None for p in result.pairs)} paired differences")
    return 0
