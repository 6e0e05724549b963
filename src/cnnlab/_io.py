"""Atomic file writes: readers see the old file or the new one, never a half-written one."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory + fsync + ``os.replace``;
    a failed write leaves no temp file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_temps(directory: str | os.PathLike) -> list[Path]:
    """Delete the temp files of :func:`atomic_write` calls whose process was killed mid-write
    (``.NAME.tmp-PID`` with PID no longer running); returns what was removed."""
    removed = []
    for tmp in Path(directory).glob(".*.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a temp file or directory of a live writer is not stale)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def save_figure(fig: Any, path: str | os.PathLike, **savefig_kwargs: Any) -> None:
    """A matplotlib figure saved atomically (format from the file suffix, default PNG)."""
    buf = io.BytesIO()
    fmt = Path(path).suffix.lstrip(".") or "png"
    fig.savefig(buf, format=fmt, **savefig_kwargs)
    atomic_write(path, buf.getvalue())
