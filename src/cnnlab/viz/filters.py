"""Learned filters: the first layer as an image grid, statistics for every conv layer.

The grid is the picture of Krizhevsky et al. 2012, Fig. 3 (the 96 11x11x3 kernels of AlexNet's
first layer): each kernel scaled to [0, 1] on its own (as ``torchvision.utils.make_grid(...,
normalize=True, scale_each=True)``), RGB for 3-channel inputs, gray for 1-channel ones. Deeper
layers see tens to hundreds of channels, which no image shows; for them (and for all layers in
the table) the statistics: per-filter L2 norms (spread, near-dead filters) and the mean |w| per
kernel position (how much of the kernel is used; Simonyan & Zisserman's 3x3 argument).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.train.source import LoadedModel, load_model
from cnnlab.viz._common import minmax, pyplot, tile

__all__ = ["FilterStats", "conv_layers", "filter_grid", "filter_stats", "first_conv", "plot_filters"]

DEAD_FRACTION = 1e-2  # a filter whose L2 norm is below 1% of the layer's largest counts as near-dead


@dataclass(frozen=True)
class FilterStats:
    """Statistics of one conv layer's weight ``(out, in/groups, kh, kw)``."""

    layer: str
    shape: tuple[int, int, int, int]
    groups: int
    mean: float
    std: float
    abs_mean: float
    norm_min: float
    norm_median: float
    norm_max: float
    near_dead: int  # filters with norm < DEAD_FRACTION * norm_max

    def as_dict(self) -> dict:
        return {**self.__dict__, "shape": list(self.shape)}


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def first_conv(model: nn.Module) -> str:
    """The registry's ``first_conv`` when it names a Conv2d, else the first Conv2d in the model."""
    name = getattr(model, "pretrained_cfg", {}).get("first_conv")
    modules = dict(model.named_modules())
    if name in modules and isinstance(modules[name], nn.Conv2d):
        return name
    convs = conv_layers(model)
    if not convs:
        raise ConfigError(f"{type(model).__name__} has no Conv2d layer")
    return convs[0][0]


def _stats(name: str, conv: nn.Conv2d) -> FilterStats:
    w = conv.weight.detach().float()
    norms = w.flatten(1).norm(dim=1)
    top = float(norms.max())
    return FilterStats(name, tuple(w.shape), conv.groups, float(w.mean()), float(w.std()), float(w.abs().mean()),
                       float(norms.min()), float(norms.median()), top, int((norms < DEAD_FRACTION * top).sum()))


def filter_stats(source: str | os.PathLike | nn.Module | LoadedModel, layer: str | None = None,
                 weights: str | None = "imagenet") -> list[FilterStats]:
    """Statistics of every Conv2d in the model (or only ``layer``), in forward order of definition."""
    model = load_model(source, weights).model
    convs = conv_layers(model)
    if layer is not None:
        convs = [(n, m) for n, m in convs if n == layer]
        if not convs:
            _no_conv(model, layer)
    return [_stats(n, m) for n, m in convs]


def _no_conv(model: nn.Module, layer: str):
    names = [n for n, _ in conv_layers(model)]
    raise ConfigError(f"{layer!r} is not a Conv2d of {type(model).__name__}; e.g. "
                      f"{', '.join(names[:3] + names[-1:])} (`cnnlab inspect MODEL --depth -1` lists all)")


def filter_grid(weight: torch.Tensor, ncols: int | None = None) -> np.ndarray:
    """``(out, 3|1, kh, kw)`` kernels -> one image grid, each kernel scaled to [0, 1] on its own.

    Returns ``(H, W, 3)`` for RGB kernels, ``(H, W)`` for 1-channel ones.
    """
    w = weight.detach().float().cpu().numpy()
    if w.ndim != 4 or w.shape[1] not in (1, 3):
        raise ConfigError(f"an image grid needs kernels over 1 or 3 input channels; these are {tuple(w.shape)} "
                          "(a deeper layer: use the filter statistics)")
    w = minmax(w, axis=(1, 2, 3))
    maps = w[:, 0] if w.shape[1] == 1 else w.transpose(0, 2, 3, 1)
    return tile(maps, ncols)


def plot_filters(source: str | os.PathLike | nn.Module | LoadedModel, layer: str | None = None,
                 weights: str | None = "imagenet"):
    """``(figure, stats)``: the kernel grid of ``layer`` (default: the first conv) when it sees 1 or
    3 channels, else its statistics: a histogram of filter norms and the mean |w| per kernel position."""
    loaded = load_model(source, weights)
    model = loaded.model
    name = layer or first_conv(model)
    conv = dict(conv_layers(model)).get(name)
    if conv is None:
        _no_conv(model, name)
    stats = _stats(name, conv)
    plt = pyplot()
    out, cin, kh, kw = stats.shape
    title = f"{loaded.name} {name}: {out} filters of {kh}x{kw}x{cin} ({loaded.origin})"
    if cin in (1, 3) and conv.groups == 1:
        grid = filter_grid(conv.weight)
        fig, ax = plt.subplots(figsize=(7, 7))
        ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, interpolation="nearest", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=9)
    else:
        w = conv.weight.detach().float()
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        ax1.hist(w.flatten(1).norm(dim=1).numpy(), bins=40, color="tab:blue")
        ax1.set_xlabel("filter L2 norm")
        ax1.set_ylabel("filters")
        ax1.set_title(f"median {stats.norm_median:.3g}, near-dead {stats.near_dead}/{out}", fontsize=9)
        im = ax2.imshow(w.abs().mean(dim=(0, 1)).numpy(), cmap="magma", interpolation="nearest")
        ax2.set_title(f"mean |w| per kernel position ({kh}x{kw})", fontsize=9)
        fig.colorbar(im, ax=ax2)
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig, stats
