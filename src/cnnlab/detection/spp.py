"""Spatial pyramid pooling (He, Zhang, Ren & Sun, "Spatial Pyramid Pooling in Deep Convolutional Networks for
Visual Recognition", ECCV 2014 / TPAMI 2015).

§2.2-2.3: the pyramid divides a feature-map window of any size ``h x w`` into ``n x n`` bins for each level
``n`` (the paper's 4x4, 2x2, 1x1 = 21 bins) and max-pools each bin, so a window of ``C`` channels always
gives ``C * sum(n^2)`` numbers -- the fixed length the fc layers need, whatever the window's size.
§4 (detection): the conv layers run once on the whole image and each proposal's window is projected onto
the last conv map (stride ``S``) and pooled there, instead of warping each proposal through the whole net.

Bins are those of an adaptive max-pool (bin ``i`` of ``n`` covers ``floor(i h / n) .. ceil((i + 1) h / n)``)
and windows are projected with Fast R-CNN's rounding (``round(x * scale)``, end inclusive), the convention
of ``torchvision.ops.roi_pool``: a one-level pyramid *is* RoI pooling (Girshick 2015, §2.1), so the layer runs
each level as ``roi_pool`` over all windows at once; :func:`window_pyramid` is the per-window definition it is
tested against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_pool

__all__ = ["SpatialPyramidPool", "spatial_pyramid_pool", "window_pyramid", "pyramid_length"]


def pyramid_length(channels: int, levels: tuple[int, ...]) -> int:
    """``C * sum(n^2)``: the output length of the pyramid (4-2-1 over 256 channels: 5,376)."""
    return channels * sum(n * n for n in levels)


def _window(features: torch.Tensor, box: torch.Tensor, spatial_scale: float) -> torch.Tensor:
    """The feature-map window of one image-coordinate box ``(x0, y0, x1, y1)``: roi_pool's projection
    (``floor(v * scale + 0.5)``, end inclusive, at least one cell); rows/columns past the map's edge are
    ``-inf`` so they never win a max (a bin lying wholly outside gives 0, as roi_pool's empty bins)."""
    scaled = box.float() * spatial_scale  # float32 and std::round (half away from zero), as roi_pool's kernel
    x0, y0, x1, y1 = (torch.sign(scaled) * torch.floor(scaled.abs() + 0.5)).int().tolist()
    h, w = max(y1 - y0 + 1, 1), max(x1 - x0 + 1, 1)
    height, width = features.shape[-2:]
    window = features[:, max(y0, 0):min(y0 + h, height), max(x0, 0):min(x0 + w, width)]
    pad = (max(-x0, 0), max(x0 + w - width, 0), max(-y0, 0), max(y0 + h - height, 0))
    if any(pad):
        window = F.pad(window, pad, value=float("-inf"))
    return window


def window_pyramid(features: torch.Tensor, boxes: list[torch.Tensor], levels: tuple[int, ...] = (4, 2, 1),
                   spatial_scale: float = 1.0) -> torch.Tensor:
    """The paper's definition, one window at a time: crop each box's window of the map and adaptive-max-pool it
    to ``n x n`` for every level. ``features`` ``[B, C, H, W]``, ``boxes`` a list of B ``[n_i, 4]`` xyxy tensors in
    image pixels, ``spatial_scale`` = 1 / the map's stride. Returns ``[sum n_i, C * sum(n^2)]``, level by level,
    each level channel-major (``[C, n, n]`` flattened). The reference for :func:`spatial_pyramid_pool`."""
    rows = []
    for fmap, image_boxes in zip(features, boxes):
        for box in image_boxes:
            window = _window(fmap, box, spatial_scale)
            rows.append(torch.cat([F.adaptive_max_pool2d(window, n).flatten() for n in levels]))
    if not rows:
        return features.new_zeros(0, pyramid_length(features.shape[1], levels))
    out = torch.stack(rows)
    return out.masked_fill(torch.isneginf(out), 0.0)


def spatial_pyramid_pool(features: torch.Tensor, boxes: list[torch.Tensor], levels: tuple[int, ...] = (4, 2, 1),
                         spatial_scale: float = 1.0) -> torch.Tensor:
    """:func:`window_pyramid` computed for all windows at once: each level is RoI pooling to ``n x n`` bins
    (``torchvision.ops.roi_pool``, the same projection and bins), the levels concatenated."""
    boxes = [b.to(features.dtype) for b in boxes]
    return torch.cat([roi_pool(features, boxes, output_size=n, spatial_scale=spatial_scale).flatten(1)
                      for n in levels], 1)


class SpatialPyramidPool(nn.Module):
    """The SPP layer as a module: ``forward(features, boxes) -> [sum n_i, C * sum(n^2)]`` (see
    :func:`spatial_pyramid_pool`); ``output_length(C)`` the fc layer's input width."""

    def __init__(self, levels: tuple[int, ...] = (4, 2, 1), spatial_scale: float = 1.0) -> None:
        super().__init__()
        if not levels or min(levels) < 1:
            raise ValueError(f"SPP levels must be positive bin counts, got {levels}")
        self.levels, self.spatial_scale = tuple(int(n) for n in levels), float(spatial_scale)

    def output_length(self, channels: int) -> int:
        return pyramid_length(channels, self.levels)

    def forward(self, features: torch.Tensor, boxes: list[torch.Tensor]) -> torch.Tensor:
        return spatial_pyramid_pool(features, boxes, self.levels, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, spatial_scale={self.spatial_scale:g}"
