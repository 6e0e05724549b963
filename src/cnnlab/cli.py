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
                   "cnnlab.viz.commands", "cnnlab.export.commands")


def _cmd_models(args: argparse.Namespace) -> int:
    from cnnlab.zoo import print_zoo

    print_zoo(args.pattern, macs=not args.no_macs)
    return 0


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="cnnlab", description="The laboratory for classic CNNs.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("models", help="list the model zoo (name, family, params, GMACs)")
    p.add_argument("pattern", nargs="?", default=None, help='fnmatch filter, e.g. "resnet*"')
    p.add_argument("--no-macs", action="store_true", help="skip the MAC count column")
    p.set_defaults(func=_cmd_models)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
