"""One figure style for the lab and its report: readable when projected, safe for colour-blind readers.

Text at >= 14 pt, thick lines, and the Okabe-Ito palette (Okabe & Ito 2008, "Color Universal Design"),
whose eight colours stay distinct under the common colour-vision deficiencies. Figures are built with
``matplotlib.figure.Figure`` (no pyplot state, safe in worker processes).
"""

from __future__ import annotations

from typing import Any

__all__ = ["MIN_FONT_PT", "OKABE_ITO", "RC", "finalize", "new_figure"]

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")

RC = {
    "font.size": 15, "axes.titlesize": 16, "axes.labelsize": 15, "xtick.labelsize": 14, "ytick.labelsize": 14,
    "legend.fontsize": 14, "lines.linewidth": 2.5, "lines.markersize": 8, "axes.grid": True, "grid.alpha": 0.3,
    "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 100, "savefig.dpi": 100,
}


def new_figure(nrows: int = 1, ncols: int = 1, width: float = 8.0, height: float = 5.0, **kw: Any):
    """``(fig, axes)`` in the lab style; save with :meth:`cnnlab.lab.Context.save_figure`."""
    import matplotlib
    from cycler import cycler
    from matplotlib.figure import Figure

    with matplotlib.rc_context({**RC, "axes.prop_cycle": cycler(color=list(OKABE_ITO))}):
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=True, **kw)
    for ax in (axes.flat if hasattr(axes, "flat") else [axes]):
        ax.set_prop_cycle(color=list(OKABE_ITO))
        _restyle(ax)
    return fig, axes


def _restyle(ax: Any) -> None:
    """rc_context applies at creation only for some settings; set the text sizes on the axes themselves."""
    ax.title.set_fontsize(RC["axes.titlesize"])
    ax.xaxis.label.set_fontsize(RC["axes.labelsize"])
    ax.yaxis.label.set_fontsize(RC["axes.labelsize"])
    ax.tick_params(labelsize=RC["xtick.labelsize"])
    ax.grid(True, alpha=0.3)


MIN_FONT_PT = 14


def finalize(fig: Any) -> Any:
    """Raise every text of ``fig`` (titles, labels, ticks, legends, annotations) to at least 14 pt; log axes
    keep their decade labels only (minor labels at 14 pt would overlap)."""
    from matplotlib.text import Text
    from matplotlib.ticker import NullFormatter

    for ax in fig.axes:
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale == "log":
                axis.set_minor_formatter(NullFormatter())

    for text in fig.findobj(Text):
        if text.get_text() and text.get_fontsize() < MIN_FONT_PT:
            text.set_fontsize(MIN_FONT_PT)
    return fig
