"""Predictions as colour overlays: image | ground truth | prediction, with a legend.

Colours follow the PASCAL VOC palette (class 0 background black, then the bit-interleaved colour map
of the VOC devkit's ``labelcolormap.m``); the ignore label (255) is drawn white. ``panel`` returns the
picture as a ``uint8 [H, W, 3]`` array; ``render_predictions`` lays several out in a matplotlib
figure with a legend and writes a PNG atomically.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from cnnlab._io import atomic_write, save_figure

__all__ = ["voc_palette", "colorize", "overlay", "panel", "render_predictions", "write_png"]

IGNORE_COLOR = (255, 255, 255)


def voc_palette(n: int = 256) -> np.ndarray:
    """``[n, 3]`` uint8: the PASCAL VOC colour map (class c's RGB bits are c's bits, interleaved)."""
    pal = np.zeros((n, 3), dtype=np.uint8)
    for c in range(n):
        r = g = b = 0
        v = c
        for j in range(8):
            r |= ((v >> 0) & 1) << (7 - j)
            g |= ((v >> 1) & 1) << (7 - j)
            b |= ((v >> 2) & 1) << (7 - j)
            v >>= 3
        pal[c] = (r, g, b)
    return pal


def _np(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def colorize(mask: Any, palette: np.ndarray | None = None, ignore_index: int = 255) -> np.ndarray:
    """``[H, W]`` labels -> ``[H, W, 3]`` uint8 colours; ``ignore_index`` white."""
    m = _np(mask).astype(np.int64)
    pal = voc_palette(256) if palette is None else np.asarray(palette, dtype=np.uint8)
    out = pal[np.clip(m, 0, len(pal) - 1)]
    out[m == ignore_index] = IGNORE_COLOR
    return out


def _rgb(image: Any) -> np.ndarray:
    """``[C, H, W]`` or ``[H, W]`` (uint8, or float in [0, 1]; other floats are min-max scaled) ->
    ``[H, W, 3]`` uint8."""
    x = _np(image)
    if x.ndim == 3 and x.shape[0] in (1, 3):
        x = x.transpose(1, 2, 0)
    if x.ndim == 2:
        x = x[..., None]
    if x.dtype != np.uint8:
        x = x.astype(np.float64)
        lo, hi = x.min(), x.max()
        if lo < 0 or hi > 1:
            x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
        x = np.round(x * 255).astype(np.uint8)
    return np.repeat(x, 3, axis=2) if x.shape[2] == 1 else x[..., :3]


def overlay(image: Any, mask: Any, alpha: float = 0.5, palette: np.ndarray | None = None,
            ignore_index: int = 255) -> np.ndarray:
    """The image with non-background classes blended in their colour (``alpha``), ``[H, W, 3]`` uint8."""
    rgb = _rgb(image).astype(np.float64)
    m = _np(mask)
    if rgb.shape[:2] != m.shape:
        raise ValueError(f"image {rgb.shape[:2]} and mask {m.shape} differ in size")
    col = colorize(m, palette, ignore_index).astype(np.float64)
    a = np.where((m != 0)[..., None], alpha, 0.0)
    return np.round(rgb * (1 - a) + col * a).astype(np.uint8)


def panel(image: Any, target: Any, pred: Any, alpha: float = 0.5, gap: int = 2, **kw: Any) -> np.ndarray:
    """``image | ground-truth overlay | prediction overlay`` side by side, ``gap`` white columns apart."""
    parts = [_rgb(image), overlay(image, target, alpha, **kw), overlay(image, pred, alpha, **kw)]
    h = parts[0].shape[0]
    sep = np.full((h, gap, 3), 255, dtype=np.uint8)
    return np.concatenate([parts[0], sep, parts[1], sep, parts[2]], axis=1)


def write_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a ``[H, W, 3]`` uint8 array as a PNG of exactly that size (atomically)."""
    import matplotlib.image

    buf = io.BytesIO()
    matplotlib.image.imsave(buf, np.ascontiguousarray(array), format="png")
    atomic_write(path, buf.getvalue())


def render_predictions(images: Any, targets: Any, preds: Any, classes: Sequence[str] | None = None,
                       path: str | os.PathLike | None = None, alpha: float = 0.5, max_rows: int = 8,
                       scale: float = 2.0, dpi: int = 100, ignore_index: int = 255):
    """A figure with one row per image (``image | ground truth | prediction``) and a legend of the
    classes that appear; written to ``path`` (PNG) if given. ``preds`` may be labels ``[B, H, W]`` or
    logits ``[B, K, H, W]``. Returns the matplotlib ``Figure``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    preds = _np(preds)
    if preds.ndim == 4:
        preds = preds.argmax(1)  # numpy here
    targets = _np(targets)
    n = min(len(preds), max_rows)
    h, w = targets.shape[-2:]
    fig_w, fig_h = (3 * w * scale) / dpi + 1.8, (n * h * scale) / dpi + 0.4
    fig, axes = plt.subplots(n, 3, figsize=(fig_w, fig_h), dpi=dpi, squeeze=False)
    pal = voc_palette(256)
    for i in range(n):
        views = (_rgb(images[i]), overlay(images[i], targets[i], alpha, pal, ignore_index),
                 overlay(images[i], preds[i], alpha, pal, ignore_index))
        for j, (ax, v) in enumerate(zip(axes[i], views)):
            ax.imshow(v, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(("image", "ground truth", "prediction")[j], fontsize=9)
    present = sorted({int(c) for c in np.unique(np.concatenate([targets[:n].ravel(), preds[:n].ravel()]))
                      if c != ignore_index})
    names = list(classes) if classes is not None else [str(c) for c in range(max(present, default=0) + 1)]
    handles = [Patch(color=pal[c] / 255, label=names[c] if c < len(names) else str(c)) for c in present]
    fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    fig.subplots_adjust(left=0.01, right=1 - 1.7 / fig_w, top=1 - 0.35 / fig_h, bottom=0.01, wspace=0.03,
                        hspace=0.03)
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig
