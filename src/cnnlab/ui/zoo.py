"""The Zoo tab: the registry searched and filtered, one model's layer table (``cnnlab inspect``),
two models side by side (``cnnlab compare``) and the ball chart with the chosen model highlighted.

Every number comes from :mod:`cnnlab.analysis` (one shape-only pass on the meta device); this module
only picks rows and formats cells.
"""

from __future__ import annotations

import fnmatch
import functools
import tempfile
from pathlib import Path
from typing import Any

from cnnlab.analysis import compare, format_compare, inspect
from cnnlab.analysis.compare import ball_chart
from cnnlab.analysis.summary import LayerRow, Summary, format_macs
from cnnlab.errors import ConfigError, UnknownModelError
from cnnlab.models import get_model_info, list_models

LAYER_HEADERS = ["layer", "type", "output shape", "params", "MACs", "receptive field (px)", "jump (px)",
                 "memory (KiB)"]
"""The layer table's columns: output shape at batch 1, parameters (a container sums its children),
multiply-adds, receptive field and jump of one output unit in input pixels, output tensor size."""

# The ball chart's company: the lectures' landmark ImageNet nets, each with a published top-1.
LANDMARKS = ("alexnet", "vgg16", "googlenet", "inception_v3", "resnet50", "resnet152", "densenet121",
             "squeezenet1_0", "mobilenet_v2", "shufflenet_v2_x1_0", "efficientnet_b0")

ALL_FAMILIES = "all families"


def families() -> list[str]:
    """The registry's families, sorted, behind the "all families" choice."""
    return [ALL_FAMILIES] + sorted({get_model_info(n).family for n in list_models()})


def find_models(query: str = "", family: str = ALL_FAMILIES) -> list[str]:
    """Registered names matching ``query`` (a substring, or a glob such as ``resnet*``), in ``family``."""
    query = (query or "").strip().lower()
    names = list_models()
    if family and family != ALL_FAMILIES:
        names = [n for n in names if get_model_info(n).family == family]
    if not query:
        return names
    if any(c in query for c in "*?["):
        return [n for n in names if fnmatch.fnmatch(n, query)]
    return [n for n in names if query in n.lower()]


def input_size(name: str, size: int | float | None) -> tuple[int, int, int]:
    """``(C, H, W)``: the model's channels at ``size`` px (0 or None: its published size)."""
    info = get_model_info(require_name(name))
    side = int(size or 0) or info.default_size
    if side < info.min_size:
        raise ConfigError(f"{name} needs an input of at least {info.min_size} px, got {side}")
    return (info.in_chans, side, side)


def require_name(name: str | None) -> str:
    """``name`` stripped; an empty choice is a one-line error rather than a traceback."""
    name = (name or "").strip()
    if not name:
        raise UnknownModelError("no model chosen: type or pick a name from the list (`cnnlab models`)")
    get_model_info(name)  # raises UnknownModelError with the closest names
    return name


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, tuple):
        return "x".join(f"{x:g}" for x in v)
    return f"{v:g}" if isinstance(v, float) else str(v)


def layer_rows(summary: Summary, depth: int = 3) -> list[list[Any]]:
    """One row per module call down to ``depth`` (-1: all), in :data:`LAYER_HEADERS` order; names indented
    by depth (non-breaking spaces, which HTML keeps), numbers with thousands separators."""
    def row(r: LayerRow) -> list[Any]:
        shape = "x".join(map(str, r.output_shape[1:])) if r.output_shape else "-"
        return ["\u00a0\u00a0" * (r.depth - 1) + r.name, r.type, shape, f"{r.params:,}", f"{r.macs:,}",
                _cell(r.receptive_field), _cell(r.jump), f"{r.activation_bytes / 1024:,.1f}"]
    return [row(r) for r in summary.visible_rows(depth)]


def totals_markdown(s: Summary) -> str:
    """The totals under the table, as ``cnnlab inspect`` prints them."""
    size = "x".join(map(str, s.input_size))
    out = "x".join(map(str, s.output_shape[1:])) if s.output_shape else "-"
    return (f"**{s.model_name}** at {size}: **{s.total_params:,} parameters** "
            f"({s.trainable_params:,} trainable), **{format_macs(s.total_macs)}** "
            f"({format_macs(s.total_flops, 'FLOPs')}), output {out}, receptive field {_cell(s.receptive_field)} px, "
            f"peak activation {s.peak_activation_bytes / 2**20:.1f} MiB, weights {s.param_bytes / 2**20:.1f} MiB "
            "(batch 1, float32).")


def layer_table(name: str, size: int | None = None, depth: int = 3) -> tuple[list[list[Any]], str, Summary]:
    """``(rows, totals markdown, summary)`` of ``inspect(name, size)`` shown to ``depth``."""
    s = inspect(require_name(name), input_size(name, size), depth=int(depth))
    return layer_rows(s, int(depth)), totals_markdown(s), s


@functools.lru_cache(maxsize=4)
def _landmark_rows(side: int | None) -> tuple:
    return tuple(compare(list(LANDMARKS), None if side is None else (3, side, side)))


def ball_chart_for(name: str, size: int | None = None, out_dir: str | Path | None = None) -> Path:
    """The ball chart of the landmark nets plus ``name`` (highlighted), all at ``size`` (default: their own)."""
    name = require_name(name)
    side = int(size) if size else None
    rows = list(_landmark_rows(side))
    if name not in LANDMARKS:
        rows += compare([name], None if side is None else input_size(name, side))
    out = Path(out_dir or tempfile.mkdtemp(prefix="cnnlab-ui-"))
    return ball_chart(rows, out / f"ball-{name}-{side or 'own'}.png", highlight=name)


def compare_markdown(first: str, second: str, size: int | None = None) -> str:
    """``cnnlab compare first second`` as a Markdown table, with the ratios between them under it."""
    a, b = require_name(first), require_name(second)
    side = int(size) if size else None
    rows = compare([a, b], None if side is None else input_size(a, side))
    ra, rb = rows
    lines = [format_compare(rows, "md"),
             f"{rb.name} has **{rb.params / ra.params:.2f}x** the parameters and **{rb.macs / ra.macs:.2f}x** "
             f"the multiply-adds of {ra.name}"]
    if ra.top1 is not None and rb.top1 is not None:
        lines[-1] += f"; published top-1 {rb.top1 - ra.top1:+.1f} points"
    return "\n".join(lines) + "."
