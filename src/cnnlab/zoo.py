"""The zoo table: every registered model with its family, parameter count and cost."""

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


def zoo_rows(pattern: str | None = None, macs: bool = True) -> list[ZooRow]:
    """One row per model at its published input (224 for ImageNet nets, 32 for LeNet/CIFAR nets).

    Parameters are counted on the meta device, MACs by the inspection engine: nothing is allocated.
    """
    from cnnlab.analysis import count_macs

    names = list_models(pattern)
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
        rows.append(ZooRow(name, info.family, params, info.params, size, gmacs, info.torchvision, info.paper))
    return rows


def print_zoo(pattern: str | None = None, macs: bool = True) -> None:
    """Print the zoo table. Names are never cut: the name column is as wide as the longest name,
    and off a terminal (a log, a pipe) the console does not squeeze the table to 80 columns."""
    from rich.table import Table

    from cnnlab._console import make_console
    from cnnlab.analysis.summary import format_macs

    rows = zoo_rows(pattern, macs)
    table = Table(title=f"cnnlab model zoo ({len(rows)} models)")
    table.add_column("model", style="bold", no_wrap=True, min_width=max((len(r.name) for r in rows), default=5))
    table.add_column("family", overflow="fold")
    table.add_column("params", justify="right", overflow="fold")
    table.add_column("input", justify="right", overflow="fold")
    table.add_column("MACs", justify="right", overflow="fold")
    table.add_column("torchvision twin")
    for r in rows:
        mac = format_macs(r.gmacs * 1e9) if r.gmacs is not None else "-"
        table.add_row(r.name, r.family, f"{r.params:,}", "x".join(map(str, r.input_size)), mac,
                      r.torchvision or "-")
    make_console().print(table)
