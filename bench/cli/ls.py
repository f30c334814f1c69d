"""`bench ls methods|models|tasks`: the registries as tables. Listing methods imports no torch."""

from __future__ import annotations

import importlib
import sys

# what -> "module:function" returning a list of row dicts (keys in column order)
LISTERS = {
    "methods": "methods:method_rows",
    "models": "bench.models.zoo:model_rows",
    "tasks": "bench.data.tasks:task_rows",
}


def register(subparsers) -> None:
    p = subparsers.add_parser("ls", help="list methods, models or tasks")
    p.add_argument("what", choices=sorted(LISTERS), help="which registry to list")
    p.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    p.add_argument("-v", "--verbose", dest="long", action="store_true",
                   help="methods: also each one's CPU-cost class and parameters with defaults (imports torch; "
                        "`bench show METHOD` explains each parameter)")
    p.add_argument("--include-path", action="append", metavar="DIR",
                   help="also list the plug-ins of this folder (.py pruners, lm-eval task YAMLs; repeatable)")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.include_path:
        from bench.run import plugins

        plugins.load(args.include_path)
    module, func = LISTERS[args.what].split(":")
    lister = getattr(importlib.import_module(module), func)
    rows = lister(verbose=True) if args.what == "methods" and args.long else lister()
    if args.json:
        import json

        print(json.dumps(rows, indent=2, default=str))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=args.what)
    columns = list(rows[0]) if rows else []
    for i, col in enumerate(columns):
        table.add_column(col, no_wrap=i == 0)  # names are what a user copies: never cut
    for row in rows:
        table.add_row(*["" if row.get(c) is None else str(row.get(c)) for c in columns])
    # a pipe or a log has no width: print whole rows there rather than rich's 80-column default
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    return 0
