"""The ``cnnlab`` command: parses arguments and calls the library; errors become one line.

Each capability contributes its sub-commands through ``register(subparsers)`` in its own
``commands`` module (``cnnlab.analysis.commands``, ``cnnlab.data.commands``,
``cnnlab.train.commands``); every sub-parser sets ``func(args) -> int``.
"""

from __future__ import annotations

import argparse
import os
import sys

from cnnlab.errors import CnnlabError

COMMAND_MODULES = ("cnnlab.analysis.commands", "cnnlab.data.commands", "cnnlab.train.commands",
                   "cnnlab.segmentation.commands", "cnnlab.detection.commands", "cnnlab.transfer.commands",
                   "cnnlab.ensemble.commands", "cnnlab.viz.commands", "cnnlab.export.commands", "cnnlab.ui.commands")


def _cmd_models(args: argparse.Namespace) -> int:
    from cnnlab.zoo import print_zoo

    print_zoo(args.pattern, macs=not args.no_macs)
    return 0


def build_parser() -> argparse.ArgumentParser:
    import importlib

    from cnnlab import __version__

    parser = argparse.ArgumentParser(prog="cnnlab", description="The laboratory for classic CNNs.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("models", help="list the model zoo (name, family, params, MACs)")
    p.add_argument("pattern", nargs="?", default=None, help='fnmatch filter, e.g. "resnet*"')
    p.add_argument("--no-macs", action="store_true", help="skip the MAC count column")
    p.set_defaults(func=_cmd_models)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def command_overview(parser: argparse.ArgumentParser) -> str:
    """One line per command, as ``git`` and ``yolo`` print when called without one."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in sub._choices_actions}
    width = max(map(len, helps))
    lines = ["usage: cnnlab COMMAND [options]   (cnnlab COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in helps.items()]
    lines += ["", "Start with: cnnlab models | cnnlab inspect resnet50 | cnnlab train --recipe fashion-fast"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        print(command_overview(parser))
        return 0
    debug = args.debug or bool(os.environ.get("CNNLAB_DEBUG"))
    try:
        return int(args.func(args) or 0)
    except CnnlabError as e:
        if debug:
            raise
        print(f"cnnlab {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cnnlab {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug, not bad input: still one line unless --debug
        if debug:
            raise
        print(f"cnnlab {args.command}: internal error ({type(e).__name__}): {e} "
              "(rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
