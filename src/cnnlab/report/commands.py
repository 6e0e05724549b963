"""``cnnlab report [DIR...] [--out report/]``: parse, call :mod:`cnnlab.report`, print."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("report", help="render lab results into one self-contained HTML page + Markdown",
                       description="Merge result directories of `cnnlab lab run` (from any machines) into one "
                                   "static HTML page with figures embedded (no network) and a Markdown twin.")
    p.add_argument("dirs", nargs="*", default=["lab"], metavar="DIR",
                   help="results roots or experiment directories [lab]")
    p.add_argument("--out", default="report", metavar="DIR", help="where index.html and report.md go [report]")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from cnnlab.report import write_report

    paths = write_report(args.dirs, args.out)
    print(f"{paths['experiments']} experiments -> {paths['html']} (self-contained) and {paths['markdown']}")
    return 0
