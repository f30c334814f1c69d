"""The `bench` command. Each subcommand lives in its own module with `register(subparsers)`.

Subcommand modules import nothing heavy at module level: `bench ls methods` must not import torch.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

from bench import __version__
from bench.cli.edge import EXIT_USER_ERROR, OneLineParser, error_line, os_error_line
from bench.core.errors import BenchError

# name of the module under bench.cli for each subcommand, in help order
SUBCOMMANDS = ("run", "prune", "ls", "show", "data", "report", "regress", "compare")


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="bench", description="The reference benchmark for LLM layer pruning.")
    parser.add_argument("--version", action="version", version=f"bench {__version__}")
    parser.add_argument("--cache-dir", help="cache root for models and data (default: $BENCH_CACHE_DIR or ~/.cache/layerprune-bench)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:  # a listed module that is missing is a broken install: the import fails
        importlib.import_module(f"bench.cli.{name}").register(subparsers)
    return parser


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    # at the default verbosity library lines look like the progress lines (`[bench HH:MM:SS] ...`)
    fmt = "[bench %(asctime)s] %(message)s" if verbosity == 0 else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt, datefmt="%H:%M:%S")
    for ours in ("bench", "methods"):  # the harness's and the pruners' own progress (SLEB's rounds) at INFO
        logging.getLogger(ours).setLevel(logging.INFO if verbosity == 0 else level)


def _quiet_third_party_progress() -> None:
    """Our own progress display is the UI: transformers' loading bars always off, tqdm (lm-eval) off when
    stderr is not a terminal or under CI. Set before transformers is imported."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:  # already imported (an embedding program, a test): switch off directly
        sys.modules["transformers"].utils.logging.disable_progress_bar()
    if os.environ.get("CI") or not sys.stderr.isatty():
        os.environ.setdefault("TQDM_DISABLE", "1")


def main(argv: list[str] | None = None) -> int:
    _quiet_third_party_progress()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or argparse's error, already printed as one line
        return int(exc.code or 0) if exc.code not in (None, 0) else 0
    if not getattr(args, "command", None):
        parser.print_help()
        print(error_line("no command given", "e.g. `bench run`; see the list above"), file=sys.stderr)
        return EXIT_USER_ERROR
    _setup_logging(args.verbose)
    try:
        if args.cache_dir:
            from bench.core.paths import set_cache_root

            if os.path.exists(args.cache_dir) and not os.path.isdir(args.cache_dir):
                raise BenchError(f"--cache-dir {args.cache_dir} is a file, not a folder", "give --cache-dir a folder")
            set_cache_root(args.cache_dir)
        return int(args.func(args) or 0)
    except BenchError as exc:
        print(error_line(exc.message, exc.hint), file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:  # `bench ls models | head`: the reader left; nothing to say
        try:  # and nothing more to flush into the closed pipe at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
    except OSError as exc:  # a full disk, a folder that became read-only: said in words, with what was kept
        logging.getLogger("bench").debug("the OSError behind the message below", exc_info=True)
        print(os_error_line(exc, getattr(args, "kept", None)), file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
