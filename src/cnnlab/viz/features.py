"""Feature maps: what chosen layers output for one image, a grid per layer.

Each grid shows up to ``max_channels`` channels of the layer's output, each scaled to [0, 1] on
its own (Zeiler & Fergus 2014 look at single channels the same way). The title gives the
output shape, receptive field and jump (stride in input pixels) that the inspection engine
(:func:`cnnlab.inspect`) computes for that layer, so one sees how big a patch of the image each
unit of the grid summarises.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cnnlab.analysis.summary import format_geo
from cnnlab.errors import ConfigError
from cnnlab.predict import ImageLike
from cnnlab.train.source import LoadedModel, load_model
from cnnlab.viz._common import ModelView, minmax, model_view, pyplot, tile

__all__ = ["FeatureMaps", "default_layers", "feature_maps", "plot_feature_maps"]


@dataclass(frozen=True)
class FeatureMaps:
    """One layer's output for one image: ``maps`` ``(C, h, w)`` (first call of the module), the
    inspection engine's ``output_shape`` (batch 1), ``receptive_field`` and ``jump`` in input
    pixels, and ``grid``: the first ``max_channels`` channels tiled, each scaled to [0, 1] (NaN between tiles)."""

    layer: str
    type: str
    maps: np.ndarray
    output_shape: tuple[int, ...] | None
    receptive_field: object
    jump: object
    grid: np.ndarray
    view: ModelView
    shown: int  # channels in the grid

    @property
    def title(self) -> str:
        shape = "x".join(map(str, self.output_shape[1:])) if self.output_shape else "?"
        return (f"{self.layer} ({self.type}): output {shape}, receptive field {format_geo(self.receptive_field)} px, "
                f"jump {format_geo(self.jump)} px")


def default_layers(model: nn.Module) -> list[str]:
    """The first, the middle and the last 2-d convolution of ``model``."""
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ConfigError(f"{type(model).__name__} has no Conv2d layer; name layers with layers=[...]")
    picks = [convs[0], convs[len(convs) // 2], convs[-1]]
    return list(dict.fromkeys(picks))


def feature_maps(source: str | os.PathLike | nn.Module | LoadedModel, image: ImageLike,
                 layers: Sequence[str] | None = None, max_channels: int = 64,
                 weights: str | None = "imagenet") -> list[FeatureMaps]:
    """The outputs of ``layers`` (module names; default: first, middle and last conv) for ``image``."""
    from cnnlab.analysis import inspect

    if max_channels < 1:
        raise ConfigError(f"max_channels must be >= 1, got {max_channels}")
    loaded = load_model(source, weights)
    model = loaded.model.eval()
    layers = list(layers) if layers else default_layers(model)
    modules = dict(model.named_modules())
    missing = [n for n in layers if n not in modules or not n]
    if missing:
        convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
        raise ConfigError(f"no module {missing[0]!r} in {loaded.name}; e.g. {', '.join(convs[:2] + convs[-2:])} "
                          "(`cnnlab inspect MODEL --depth -1` lists all)")
    view = model_view(loaded, image)
    outs: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(_m, _i, out) -> None:  # returns None: a returned value would replace the module's output
            if name not in outs:
                outs[name] = out.detach().clone()  # a copy: an in-place ReLU may overwrite ``out`` next
        return hook

    hooks = [modules[n].register_forward_hook(keep(n)) for n in layers]
    try:
        with torch.no_grad():
            model(view.x)
    finally:
        for h in hooks:
            h.remove()
    summary = inspect(model, tuple(view.x.shape[1:]), depth=None)
    result = []
    for n in layers:
        out = outs.get(n)
        if out is None or not isinstance(out, torch.Tensor) or out.dim() != 4:
            got = "was not called" if out is None else f"has output shape {tuple(getattr(out, 'shape', ()))}"
            raise ConfigError(f"layer {n!r} {got}; feature maps need a layer with a (N, C, H, W) output")
        maps = out[0].float().numpy()
        try:
            row = summary.row(n)
            shape, rf, jump = row.output_shape, row.receptive_field, row.jump
        except KeyError:
            shape, rf, jump = tuple(out.shape), None, None
        grid = tile(minmax(maps[:max_channels], axis=(1, 2)), pad_value=np.nan)  # NaN: gaps drawn white
        result.append(FeatureMaps(n, type(modules[n]).__name__, maps, shape, rf, jump, grid, view,
                                  min(max_channels, maps.shape[0])))
    return result


def plot_feature_maps(fms: Sequence[FeatureMaps], cmap: str = "viridis"):
    """One figure: the model's view of the image, then a grid per layer with its shape and RF in the title."""
    plt = pyplot()
    colors = plt.get_cmap(cmap).copy()
    colors.set_bad("white")
    n = len(fms) + 1
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 5.0), squeeze=False)
    view = fms[0].view if fms else None
    ax = axes[0, 0]
    if view is not None:
        ax.imshow(view.image, cmap="gray" if view.image.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title(f"input {'x'.join(map(str, view.x.shape[1:]))}", fontsize=9)
    for ax, fm in zip(axes[0, 1:], fms):
        ax.imshow(fm.grid, cmap=colors, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(fm.title.replace(": ", ":\n", 1) + f"\n{fm.shown} of {fm.maps.shape[0]} channels",
                     fontsize=8)
    for ax in axes[0]:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig
