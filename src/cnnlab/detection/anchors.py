"""Anchors (Faster R-CNN, Ren et al. 2015, §3.1.1): ``k = len(sizes) x len(ratios)`` reference boxes at every
position of the RPN's feature map.

An anchor of size ``s`` and aspect ratio ``r = h / w`` has area ``s^2``: ``w = s / sqrt(r)``, ``h = s sqrt(r)``;
the corners are rounded to whole pixels. The anchors of feature-map position ``(i, j)`` are centred at input pixel
``(j * stride, i * stride)`` (torchvision's ``AnchorGenerator`` convention, the oracle of the tests); their order
is position-major, then ratio, then size -- the channel order of the RPN head's ``k`` outputs per position.
At 128x128 the default ``16/32/64 px x 0.5/1/2`` (k = 9) spans Fashion-MNIST scene items (28-56 px).
"""

from __future__ import annotations

import torch

SIZES = (16, 32, 64)
RATIOS = (0.5, 1.0, 2.0)


def cell_anchors(sizes=SIZES, ratios=RATIOS, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """The ``k`` anchors ``[k, 4]`` (xyxy) centred at the origin, ratio-major then size."""
    scales = torch.as_tensor(sizes, dtype=dtype, device=device)
    h_ratio = torch.as_tensor(ratios, dtype=dtype, device=device).sqrt()
    ws = (scales[None, :] / h_ratio[:, None]).reshape(-1)
    hs = (scales[None, :] * h_ratio[:, None]).reshape(-1)
    return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()


def anchor_grid(feature_size: tuple[int, int], image_size: tuple[int, int], sizes=SIZES, ratios=RATIOS,
                dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
    """All anchors ``[h * w * k, 4]`` of an ``h x w`` feature map over an ``H x W`` image (stride ``H // h``)."""
    (h, w), (img_h, img_w) = feature_size, image_size
    stride_y, stride_x = img_h // h, img_w // w
    ys = torch.arange(h, device=device, dtype=dtype) * stride_y
    xs = torch.arange(w, device=device, dtype=dtype) * stride_x
    sy, sx = torch.meshgrid(ys, xs, indexing="ij")
    shifts = torch.stack((sx, sy, sx, sy), dim=-1).reshape(-1, 1, 4)
    return (shifts + cell_anchors(sizes, ratios, dtype, device)[None]).reshape(-1, 4)


class AnchorGrid(torch.nn.Module):
    """The anchors of one feature-map size, cached (a batch of fixed-size images shares them)."""

    def __init__(self, sizes=SIZES, ratios=RATIOS):
        super().__init__()
        self.sizes, self.ratios = tuple(sizes), tuple(ratios)
        self._cache: dict[tuple, torch.Tensor] = {}

    @property
    def num_anchors(self) -> int:
        """Anchors per feature-map position (``k``)."""
        return len(self.sizes) * len(self.ratios)

    def forward(self, feature_size: tuple[int, int], image_size: tuple[int, int], dtype: torch.dtype,
                device: torch.device) -> torch.Tensor:
        key = (tuple(feature_size), tuple(image_size), dtype, str(device))
        if key not in self._cache:
            self._cache[key] = anchor_grid(feature_size, image_size, self.sizes, self.ratios, dtype, device)
        return self._cache[key]
