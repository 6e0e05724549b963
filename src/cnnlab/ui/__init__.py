"""``cnnlab ui``: a local web page over the zoo, the inspector, predictions, CAMs, segmentation and runs.

The tab modules (:mod:`~cnnlab.ui.zoo`, :mod:`~cnnlab.ui.inside`, :mod:`~cnnlab.ui.segment`,
:mod:`~cnnlab.ui.runs`, :mod:`~cnnlab.ui.calculators`) are plain functions over the library that
return data; only :mod:`cnnlab.ui.app` imports Gradio (the optional extra ``cnnlab[ui]``), so
importing this package costs nothing until the page is built.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_app", "launch"]


def build_app(runs_dir: str = "runs") -> Any:
    """The page as a ``gradio.Blocks`` (see :func:`cnnlab.ui.app.build_app`)."""
    from cnnlab.ui.app import build_app as build

    return build(runs_dir)


def launch(host: str = "127.0.0.1", port: int = 7860, runs_dir: str = "runs", **kwargs: Any) -> Any:
    """Serve the page (see :func:`cnnlab.ui.app.launch`)."""
    from cnnlab.ui.app import launch as serve

    return serve(host, port, runs_dir, **kwargs)
