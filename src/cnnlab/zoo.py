"""The zoo table: every registered model with its family, parameter count and cost, one table per task."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cnnlab.errors import UnknownModelError
from cnnlab.models import create_model, get_model_info, list_models


@dataclass(frozen=True)
class ZooRow:
    name: str
    family: str
    params: int
    reference_params: int | None
    input_size: tuple[int, int, int]
    gmacs: float | None
    torchvision: str | None
    paper: str
    task: str = "classification"


def zoo_rows(pattern: str | None = None, macs: bool = True, task: str | None = None) -> list[ZooRow]:
    """One row per model at its published input (224 for ImageNet nets, 32 for LeNet/CIFAR nets);
    ``task`` keeps one task's models (``"classification"``, ``"segmentation"``).

    Parameters are counted on the meta device, MACs by the inspection engine: nothing is allocated.
    """
    from cnnlab.analysis import count_macs

    names = list_models(pattern, task=task)
    if pattern and not names:
        if not any(c in pattern for c in "*?["):
            get_model_info(pattern)  # raises UnknownModelError naming the closest matches
        raise UnknownModelError(f"no model matches {pattern!r} (`cnnlab models` lists all)")
    rows = []
    for name in names:
        info = get_model_info(name)
        with torch.device("meta"):
            model = create_model(name)
        params = sum(p.numel() for p in model.parameters())
        size = (info.in_chans, info.default_size, info.default_size)
        gmacs = count_macs(name, size) / 1e9 if macs else None
        rows.append(ZooRow(name, info.family, params, info.params, size, gmacs, info.torchvision, info.paper,
                           info.task))
    return rows


def print_zoo(pattern: str | None = None, macs: bool = True, task: str | None = None) -> None:
    """The classifiers' table, then one table per other task (segmentation: FCNs, logits at input size).
    Names are never cut: the name column is as wide as the longest name, and off a terminal (a log,
    a pipe) the console does not squeeze the table to 80 columns."""
    from rich.table import Table

    from cnnlab._console import make_console
    from cnnlab.analysis.summary import format_macs

    rows = zoo_rows(pattern, macs, task)
    console = make_console()
    for t in sorted({r.task for r in rows}, key=lambda t: t != "classification"):
        group = [r for r in rows if r.task == t]
        title = f"cnnlab model zoo ({len(group)} models)" if t == "classification" else f"{t} models ({len(group)})"
        table = Table(title=title)
        table.add_column("model", style="bold", no_wrap=True, min_width=max(len(r.name) for r in group))
        table.add_column("family", overflow="fold")
        table.add_column("params", justify="right", overflow="fold")
        table.add_column("input", justify="right", overflow="fold")
        table.add_column("MACs", justify="right", overflow="fold")
        last = "torchvision twin" if t == "classification" else "classes"
        table.add_column(last, justify="left" if t == "classification" else "right")
        for r in group:
            mac = format_macs(r.gmacs * 1e9) if r.gmacs is not None else "-"
            extra = (r.torchvision or "-") if t == "classification" else str(get_model_info(r.name).num_classes)
            table.add_row(r.name, r.family, f"{r.params:,}", "x".join(map(str, r.input_size)), mac, extra)
        console.print(table)
