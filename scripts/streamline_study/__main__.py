"""The study's command: `python -m scripts.streamline_study run|report` (from the repository root; the
package docstring says what each does)."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from pathlib import Path

from scripts.streamline_study.report import write_report
from scripts.streamline_study.study import Study


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m scripts.streamline_study")
    p.add_argument("action", choices=["run", "report"])
    p.add_argument("--out", default="reports/streamline-study")
    p.add_argument("--page", default="reports/streamline-study.md")
    p.add_argument("--cache", default="/tmp/streamline-study-cache", help="teacher states (not committed)")
    p.add_argument("--deadline", default=None, help="UTC HH:MM after which no work starts")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    out = Path(args.out)
    if args.action == "run":
        deadline = None
        if args.deadline:
            hh, mm = map(int, args.deadline.split(":"))
            deadline = dt.datetime.now(dt.UTC).replace(hour=hh, minute=mm, second=0, microsecond=0)
        Study(out, Path(args.cache), deadline).run()
    else:
        write_report(out, Path(args.page))


if __name__ == "__main__":
    main()
