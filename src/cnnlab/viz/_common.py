"""What the viz modules share: an image in the model's eval view, grids, figures saved atomically."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cnnlab.predict import ImageLike, load_image, preprocess
from cnnlab.train.source import LoadedModel


@dataclass(frozen=True)
class ModelView:
    """One image as the model sees it.

    ``x``: the ``(1, C, H, W)`` normalised input; ``image``: the same pixels unnormalised,
    ``(H, W, 3)`` or ``(H, W)`` in [0, 1]; ``box``: the region of the original photo this input
    shows, ``(x0, y0, x1, y1)`` in original pixels (after resize-shorter-side + center crop);
    ``scale``: input pixels per original pixel along (x, y).
    """

    x: torch.Tensor
    image: np.ndarray
    box: tuple[float, float, float, float]
    scale: tuple[float, float]
    source: str

    def to_original(self, row: float, col: float) -> tuple[float, float]:
        """Input pixel (row, col) -> (x, y) in the original photo (pixel centres)."""
        return (self.box[0] + (col + 0.5) / self.scale[0], self.box[1] + (row + 0.5) / self.scale[1])


def model_view(loaded: LoadedModel, image: ImageLike) -> ModelView:
    """Preprocess ``image`` with the model's eval transform and record where the crop lies."""
    p = loaded.preprocess
    img = load_image(image)
    x = preprocess(img, getattr(loaded.model, "pretrained_cfg", {})).unsqueeze(0)
    w0, h0 = img.size
    r, s = p["resize_size"], p["input_size"]
    short, long = (w0, h0) if w0 <= h0 else (h0, w0)  # torchvision's resize of the shorter side
    new_short, new_long = r, int(r * long / short)
    wr, hr = (new_short, new_long) if w0 <= h0 else (new_long, new_short)
    top, left = int(round((hr - s) / 2.0)), int(round((wr - s) / 2.0))  # torchvision's center_crop
    sx, sy = wr / w0, hr / h0
    box = (left / sx, top / sy, (left + s) / sx, (top + s) / sy)
    c = x.shape[1]
    mean, std = torch.tensor(p["mean"]), torch.tensor(p["std"])
    if c == 1:
        mean, std = mean.mean().reshape(1), std.mean().reshape(1)
    view = (x[0] * std.view(-1, 1, 1) + mean.view(-1, 1, 1)).clamp(0, 1)
    view_np = view[0].numpy() if c == 1 else view.permute(1, 2, 0).numpy()
    src = str(image) if isinstance(image, (str, os.PathLike)) else "image"
    return ModelView(x, view_np, box, (sx, sy), src)


def tile(maps: np.ndarray, ncols: int | None = None, pad: int = 1, pad_value: float = 1.0) -> np.ndarray:
    """``(N, h, w)`` or ``(N, h, w, 3)`` images in [0, 1] -> one grid image, row-major, ``pad`` between."""
    n = maps.shape[0]
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    h, w = maps.shape[1:3]
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, *maps.shape[3:]), pad_value, dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y:y + h, x:x + w] = maps[i]
    return grid


def minmax(a: np.ndarray, axis: tuple[int, ...] | None = None) -> np.ndarray:
    """Scale to [0, 1] (per slice along ``axis``); a constant slice becomes 0."""
    lo = a.min(axis=axis, keepdims=True)
    span = a.max(axis=axis, keepdims=True) - lo
    return np.where(span > 0, (a - lo) / np.where(span > 0, span, 1), 0.0).astype(np.float32)


def pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write ``fig`` atomically (PNG unless the suffix says otherwise) and close it."""
    from cnnlab._io import save_figure

    path = Path(path)
    try:
        save_figure(fig, path, dpi=dpi, bbox_inches="tight")
    finally:
        pyplot().close(fig)
    return path
