"""The CLI's edge: every user error leaves as one line, `error: <what> (hint: <what to do>)`, and exit code 2.

argparse's own errors (a usage block, then `prog: error: ...`) are rewritten to that line, and an OSError
that reaches the edge (a full disk, a folder made read-only mid-run) is said in words, with what was kept.
"""

from __future__ import annotations

import argparse
import errno
import sys

from bench.core.pathcheck import os_reason

EXIT_USER_ERROR = 2
MAX_MESSAGE = 400  # characters of a message (and of a hint) on the error line; the rest is cut with "…"


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text` on one line (line breaks and runs of blanks become one space), at most `limit` characters:
    a library's multi-line message (transformers' six-line load error) or a huge echoed value (a YAML
    alias bomb) must not turn the error line into a page."""
    flat = " ".join(str(text)[: 4 * limit].split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def error_line(message: str, hint: str | None) -> str:
    """The one line every user error is printed as (one line whatever the message holds, length capped)."""
    message = one_line(message)
    return f"error: {message} (hint: {one_line(hint)})" if hint else f"error: {message}"


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line with a hint, not a usage block, and which takes options
    only as written: no prefix matching (`--ratio 0.1` must not be taken as `--ratios`); its subparsers
    are of this class too."""

    def __init__(self, *args, **kwargs):
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str, prog: str | None = None):  # argparse's hook
        prog = prog or self.prog
        print(error_line(f"{prog}: {message}", f"see `{prog} --help`"), file=sys.stderr)
        self.exit(EXIT_USER_ERROR)

    def parse_args(self, args=None, namespace=None):
        """As argparse's, but an unrecognized option is blamed on the subcommand it was given to."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = getattr(parsed, "command", None)
            self.error(f"unrecognized arguments: {' '.join(extras)}", f"{self.prog} {command}" if command else None)
        return parsed


def add_command(subparsers, name: str, help: str, description: str, epilog: str | None = None):
    """A subcommand's parser: `description` wrapped at 100 columns, `epilog` (the examples) kept as written."""
    import textwrap

    return subparsers.add_parser(name, help=help, description=textwrap.fill(description, 100), epilog=epilog,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)


def add_store_option(parser) -> None:
    """`--store`, the result store a command reads (default ./store)."""
    parser.add_argument("--store", default="store", help="result store folder (default ./store)")


def check_store_input(store: str, option: str = "--store") -> None:
    """A store a command reads: a missing one holds no records (said by the command); an existing one must be
    a readable folder laid out as a store."""
    import os

    from bench.core.pathcheck import readable_folder
    from bench.results.store import check_location

    if os.path.lexists(store):
        readable_folder(store, option, "result store")
        check_location(store)


def os_error_line(exc: OSError, kept: str | None) -> str:
    """An OSError as one line: what failed on which path, why in words, and what was kept."""
    where = f" writing {exc.filename}" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        what = f"the disk is full{where}" if exc.errno == errno.ENOSPC else f"the disk quota is exhausted{where}"
        hint = f"free some space and run the command again; kept: {kept}" if kept else "free some space and retry"
    else:
        what = f"{'cannot access ' + str(exc.filename) if exc.filename else 'a file operation failed'}: " \
               f"{os_reason(exc)}"
        hint = f"check the paths given; kept: {kept}" if kept else "check the paths given"
    return error_line(what, hint)
