"""``cnnlab ui``: parse the options and serve the page (:func:`cnnlab.ui.launch`)."""

from __future__ import annotations

import argparse
import importlib.util

from cnnlab.errors import ConfigError


def _cmd_ui(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("gradio") is None:
        raise ConfigError("the page needs Gradio: pip install 'cnnlab[ui]'")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be 1..65535, got {args.port}")
    from cnnlab.ui import launch

    print(f"cnnlab ui: serving http://{args.host}:{args.port} (runs from {args.runs}); Ctrl+C stops it", flush=True)
    try:
        launch(args.host, args.port, args.runs, block=True, quiet=True)
    except OSError as e:  # the port is taken, or the host is not an address of this machine
        raise ConfigError(f"cannot serve on {args.host}:{args.port} ({str(e).splitlines()[0]}); "
                          "try another --port") from None
    return 0


def register(sub) -> None:
    """Add ``ui`` to the ``cnnlab`` sub-parsers."""
    p = sub.add_parser("ui", help="a local web page: zoo, inspector, predictions, CAMs, segmentation, runs",
                       description="Serve cnnlab's page (Gradio) on this machine; needs the extra cnnlab[ui].")
    p.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes it)")
    p.add_argument("--runs", default="runs", metavar="DIR", help="folder of run directories (default runs/)")
    p.set_defaults(func=_cmd_ui)
