"""`bench show METHOD`: what a method does, what it costs on a CPU, and every parameter with its type,
default and meaning (the comment beside its field), including the LoRA healing parameters any method takes."""

from __future__ import annotations

import sys

from bench.cli.edge import add_command


def register(subparsers) -> None:
    p = add_command(
        subparsers, "show", help="a method's parameters (types, defaults, meaning) and CPU cost",
        description="Print a method's title, paper, CPU-cost class and every parameter with its type, default and "
                    "meaning, e.g. `bench show laco`. Set them with --param NAME=VALUE (bench prune) or "
                    "--param METHOD.NAME=VALUE (bench run).")
    p.add_argument("method", help="a method name (see `bench ls methods`)")
    p.add_argument("--include-path", action="append", metavar="DIR", help="a plug-in folder (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args) -> int:
    import methods
    from bench.run.config import canonical_method

    if args.include_path:
        from bench.run import plugins

        plugins.load(args.include_path)
    name = canonical_method(args.method)
    meta = methods.info(name)  # an unknown name fails here, with a suggestion
    rows = methods.parameter_rows(name)
    cost = methods.cpu_cost(name)
    if args.json:
        import json

        print(json.dumps({**meta.row(), "cpu_cost": cost, "parameters": rows}, indent=2, default=str))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 140)
    console.print(f"[bold]{name}[/bold]: {meta.title}" + (f" (arXiv:{meta.paper})" if meta.paper else ""))
    console.print(f"calibration: {'yes' if meta.needs_calibration else 'no'}; trains: {meta.trains_text}; "
                  f"CPU cost: {methods.CPU_COST[cost]}" + (f"; from {meta.origin}" if meta.origin else ""))
    table = Table(show_lines=False)
    for col in ("parameter", "type", "default", "meaning"):
        table.add_column(col, no_wrap=col == "parameter", overflow="fold")
    group = None
    for row in rows:
        if row["group"] != group:
            group = row["group"]
            table.add_section()
            table.add_row(f"[italic]{group}[/italic]", "", "", "")
        table.add_row(row["parameter"], row["type"], str(row["default"]), row["meaning"])
    console.print(table)
    from bench.run import presets

    quick = (presets.get("quick").get("method_params") or {}).get(name)
    if quick:
        console.print("the quick preset (and a plain `bench prune`) sets: "
                      + ", ".join(f"{k}={v}" for k, v in quick.items()), soft_wrap=True)
    first = next((r["parameter"] for r in rows if r["group"] == name), "heal")
    console.print(f"e.g. bench prune --method {name} --ratio 0.25 --param {first}=VALUE --out pruned/   "
                  f"(bench run: --param {name}.{first}=VALUE)", soft_wrap=True)
    return 0
