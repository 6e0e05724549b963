"""``cnnlab lab list`` and ``cnnlab lab run NAME...|all``: parse, call :mod:`cnnlab.lab`, print."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("lab", help="experiments testing each lecture claim, verdicts computed from numbers",
                       description="Reproducible experiments, one per lecture claim: each writes a directory "
                                   "(result.json, figures, run directories) with a verdict computed by a rule "
                                   "from its measured numbers. `cnnlab report DIR` renders them.")
    lab = p.add_subparsers(dest="lab_command", metavar="ACTION")
    q = lab.add_parser("list", help="name, claim in one line, estimated cost in quick and full mode")
    q.set_defaults(func=cmd_list)
    q = lab.add_parser("run", help="run experiments (cached by configuration: a rerun redoes only what changed)")
    q.add_argument("names", nargs="+", metavar="NAME", help="experiment names, or `all`")
    mode = q.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="about 2 minutes each on 2 CPU cores: small subsets, few epochs (default)")
    mode.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="the real thing: full data and schedules (a GPU or a night)")
    q.add_argument("--seeds", type=int, default=None, metavar="N", help="seeds per training arm (default per mode)")
    q.add_argument("--out", default="lab", metavar="DIR", help="results root, one directory per experiment [lab]")
    q.add_argument("--workers", type=int, default=1, metavar="N",
                   help="run experiments in N local processes, each with cores/N threads [1]")
    q.add_argument("--force", action="store_true", help="rerun even where a cached result matches")
    q.set_defaults(func=cmd_run, mode="quick")
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def cmd_list(args: argparse.Namespace) -> int:
    from cnnlab.lab import list_experiments

    exps = list_experiments()
    width = max(len(e.name) for e in exps)
    print(f"{'name':<{width}}  {'quick':>7}  {'full':>7}  claim")
    for e in exps:
        print(f"{e.name:<{width}}  {_duration(e.cost['quick']):>7}  {_duration(e.cost['full']):>7}  {e.summary}")
    total = {m: sum(e.cost[m] for e in exps) for m in ("quick", "full")}
    print(f"{'all':<{width}}  {_duration(total['quick']):>7}  {_duration(total['full']):>7}  "
          f"({len(exps)} experiments; estimates on 2 CPU cores)")
    return 0


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def cmd_run(args: argparse.Namespace) -> int:
    from cnnlab.lab import run_experiments

    summary = run_experiments(args.names, args.mode, args.seeds, args.out, workers=args.workers, force=args.force)
    print(f"{len(summary.results)} experiments in {summary.wall_s:.0f} s under {args.out}/ "
          f"({len(summary.failed)} failed{', interrupted' if summary.interrupted else ''}); "
          f"`cnnlab report {args.out}` renders them")
    for name in summary.failed:
        print(f"  {name}: {summary.results[name].get('error', 'failed')} (see {args.out}/{name}/error.txt)")
    if summary.interrupted:
        return 130
    return 1 if summary.failed else 0
