"""One rich ``Console`` for everything cnnlab prints.

On a terminal rich wraps to the window, as usual. Written to a log file or a pipe, rich would
assume 80 columns, cut table cells ("efficientne…") and break long lines mid-word (a photo
path split across two lines). Off a terminal this console therefore never hard-wraps text
(``soft_wrap``) and gives tables room (``width``), so a log holds the same words a user typed.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any

from rich.console import Console

LOG_WIDTH = 240  # columns assumed off a terminal; tables only take what they need


def make_console(file: IO[str] | None = None, **kwargs: Any) -> Console:
    """A console for ``file`` (default stdout): terminal-wrapped on a TTY, unwrapped and wide elsewhere.

    An explicit ``COLUMNS`` in the environment still wins, as rich's own rule; ``kwargs`` go to
    :class:`rich.console.Console`.
    """
    stream = file if file is not None else sys.stdout
    tty = hasattr(stream, "isatty") and stream.isatty()
    if not tty and "width" not in kwargs and not os.environ.get("COLUMNS"):
        kwargs["width"] = LOG_WIDTH
    kwargs.setdefault("soft_wrap", not tty)
    return Console(file=file, **kwargs)
