"""``cnnlab compare``: models side by side, and the lectures' "ball chart".

The chart (Canziani, Paszke & Culurciello 2016, "An Analysis of Deep Neural Network Models for
Practical Applications", Fig. 2): x = operations (GMACs), y = ImageNet top-1, ball area
proportional to the parameter count. Accuracies are published figures read from
``reference_accuracy.json`` (each with its source); a model without one is listed without accuracy
and left off the chart, never estimated.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from cnnlab._io import save_figure
from cnnlab.analysis.summary import format_bytes, format_geo, inspect
from cnnlab.errors import ConfigError

__all__ = ["CompareRow", "compare", "published_accuracy", "ball_chart", "format_compare"]


@dataclass(frozen=True)
class CompareRow:
    name: str
    input_size: tuple[int, ...]
    params: int
    macs: int
    peak_activation_bytes: int
    receptive_field: Any
    top1: float | None
    top5: float | None
    source: str

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9


@functools.cache
def _reference() -> dict[str, Any]:
    text = resources.files("cnnlab.analysis").joinpath("reference_accuracy.json").read_text()
    return json.loads(text)


def published_accuracy(name: str) -> dict[str, Any] | None:
    """``{"top1", "top5", "source"}`` for a registered model (or a torchvision name), else None.

    Lookup: the paper figure recorded for the cnnlab model; else the figure torchvision publishes
    for the registry's torchvision twin (same architecture); else ``name`` as a torchvision model.
    """
    ref = _reference()
    if name in ref["models"]:
        return dict(ref["models"][name])
    twin = None
    try:
        from cnnlab.models import get_model_info

        twin = get_model_info(name).torchvision
    except ValueError:
        twin = name
    entry = ref["torchvision"].get(twin) if twin else None
    return dict(entry) if entry else None


def compare(names: Sequence[str], input_size: Sequence[int] | str | None = None) -> list[CompareRow]:
    """Params, MACs, peak activation memory, receptive field and published accuracy per model.

    ``input_size`` None: each model at its own default input size (the size its published
    accuracy refers to).
    """
    if not names:
        raise ConfigError("compare needs at least one model name")
    rows = []
    for name in names:
        s = inspect(name, input_size)
        acc = published_accuracy(name) or {}
        rows.append(CompareRow(name, s.input_size, s.total_params, s.total_macs, s.peak_activation_bytes,
                               s.receptive_field, acc.get("top1"), acc.get("top5"), acc.get("source", "")))
    return rows


def format_compare(rows: Sequence[CompareRow], fmt: str = "table") -> str:
    """Render ``rows`` as a rich table (``"table"``), markdown, csv or json."""
    from cnnlab.analysis.summary import format_macs

    head = ["Model", "Input", "Params", "MACs", "Peak act.", "RF", "Top-1 %", "Top-5 %", "Source"]
    cells = [[r.name, "x".join(map(str, r.input_size)), f"{r.params:,}", format_macs(r.macs),
              format_bytes(r.peak_activation_bytes), format_geo(r.receptive_field),
              "-" if r.top1 is None else f"{r.top1:.2f}", "-" if r.top5 is None else f"{r.top5:.2f}",
              r.source or "no published figure"] for r in rows]
    if fmt == "json":
        return json.dumps([{**r.__dict__, "input_size": list(r.input_size), "gmacs": r.gmacs,
                            "receptive_field": list(r.receptive_field) if isinstance(r.receptive_field, tuple)
                            else r.receptive_field} for r in rows], indent=2)
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["model", "input", "params", "macs", "peak_activation_bytes", "receptive_field",
                    "top1", "top5", "source"])
        for r, c in zip(rows, cells):
            w.writerow([r.name, c[1], r.params, r.macs, r.peak_activation_bytes, c[5],
                        "" if r.top1 is None else r.top1, "" if r.top5 is None else r.top5, r.source])
        return buf.getvalue()
    if fmt == "md":
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * 6 + ["---"]) + "|"]
        lines += ["| " + " | ".join(c) + " |" for c in cells]
        return "\n".join(lines) + "\n"
    if fmt != "table":
        raise ConfigError(f"unknown format {fmt!r}: table, md, csv or json")
    import io

    from rich.console import Console
    from rich.table import Table

    table = Table(title="Model comparison (batch 1; MACs = multiply-adds of conv/linear)", title_justify="left")
    for i, h in enumerate(head):
        table.add_column(h, justify="right" if 2 <= i <= 7 else "left")
    for c in cells:
        table.add_row(*c)
    buf = io.StringIO()
    Console(file=buf, width=200, force_terminal=False, color_system=None).print(table)
    return buf.getvalue().rstrip("\n")


def ball_chart(rows: Sequence[CompareRow], path: str | Path, title: str | None = None,
               highlight: str | None = None) -> Path:
    """Save the ball chart (x = GMACs, y = top-1 %, area = params, labelled) as an image.

    Models without a published top-1 cannot be placed; they are named in a note under the chart.
    ``highlight``: a model drawn in red with a bold label, to find it among the others.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    placed = [r for r in rows if r.top1 is not None]
    missing = [r.name for r in rows if r.top1 is None]
    fig, ax = plt.subplots(figsize=(9, 6), dpi=110)
    try:
        if placed:
            biggest = max(r.params for r in placed)
            sizes = [3000 * r.params / biggest + 20 for r in placed]  # area proportional to params
            colors = plt.cm.tab20.colors
            lit = [r.name == highlight for r in placed]
            palette = ["#c9d6e3"] * len(placed) if any(lit) else [colors[i % len(colors)] for i in range(len(placed))]
            ax.scatter([r.gmacs for r in placed], [r.top1 for r in placed], s=sizes,
                       c=["#d62728" if h else c for h, c in zip(lit, palette)], alpha=0.55,
                       edgecolors="black", linewidths=[2.0 if h else 0.6 for h in lit])
            for r, h in zip(placed, lit):
                label = f"{r.name}\n{r.params / 1e6:.1f}M"
                if h:  # beside its ball, on a white box, so neighbours cannot hide it
                    ax.annotate(label, (r.gmacs, r.top1), xytext=(28, 22), textcoords="offset points",
                                fontsize=10, fontweight="bold", zorder=5, arrowprops=dict(arrowstyle="-", lw=1.2),
                                bbox=dict(boxstyle="round", fc="white", ec="#d62728", alpha=0.9))
                else:
                    ax.annotate(label, (r.gmacs, r.top1), ha="center", va="center", fontsize=8)
            ax.margins(0.15)
        ax.set_xlabel("Operations [G multiply-adds] (batch 1)")
        ax.set_ylabel("ImageNet top-1 accuracy [%] (published)")
        ax.set_title(title or "Accuracy vs operations; ball area = parameters")
        ax.grid(True, alpha=0.3)
        note = "Accuracies: published figures (see reference_accuracy.json)."
        if missing:
            note += " No published top-1, not plotted: " + ", ".join(missing)
        fig.text(0.01, 0.01, note, fontsize=7, wrap=True)
        fig.tight_layout(rect=(0, 0.04, 1, 1))
        save_figure(fig, path)  # atomic: a crash never leaves a half-written chart
    finally:
        plt.close(fig)
    return path
