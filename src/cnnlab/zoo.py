"""The zoo table: every registered model with its family, parameter count and cost."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cnnlab.models import create_model, get_model_info, list_models


@dataclass(frozen=True)
class ZooRow:
    name: str
    family: str
    params: int
    reference_params: int | None
    gmacs_224: float | None
    torchvision: str | None
    paper: str


def zoo_rows(pattern: str | None = None, macs: bool = True) -> list[ZooRow]:
    """One row per model; parameters counted on the meta device (nothing is allocated)."""
    count_macs = None
    if macs:
        try:
            from cnnlab.analysis import count_macs
        except ImportError:  # inspection engine not installed in this build
            count_macs = None
    rows = []
    for name in list_models(pattern):
        info = get_model_info(name)
        with torch.device("meta"):
            model = create_model(name)
        params = sum(p.numel() for p in model.parameters())
        gmacs = None
        if count_macs is not None:
            gmacs = count_macs(name, (3, 224, 224)) / 1e9
        rows.append(ZooRow(name, info.family, params, info.params, gmacs, info.torchvision, info.paper))
    return rows


def print_zoo(pattern: str | None = None, macs: bool = True) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = zoo_rows(pattern, macs)
    table = Table(title=f"cnnlab model zoo ({len(rows)} models)")
    table.add_column("model", style="bold")
    table.add_column("family")
    table.add_column("params", justify="right")
    table.add_column("GMACs @224", justify="right")
    table.add_column("torchvision twin")
    for r in rows:
        gm = f"{r.gmacs_224:.2f}" if r.gmacs_224 is not None else "-"
        table.add_row(r.name, r.family, f"{r.params:,}", gm, r.torchvision or "-")
    Console().print(table)
