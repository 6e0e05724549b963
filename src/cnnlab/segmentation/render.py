"""Predictions as colour overlays: image | ground truth | prediction, with a legend.

Class colours (:func:`class_palette`): background black, then matplotlib's tab20 without its greys, then
golden-ratio hues -- no class is grey, so a labelled pixel never looks unlabelled on a grayscale image (VOC's
palette, kept for VOC-format mask files in ``data/voc.py``, has (128, 128, 128) for class 7). The ignore label
(255) is drawn white. Overlays blend the class colour over a *grey* copy of the image (BT.601 luma), so one
class shows as one hue in every panel whatever the photo's own colours. ``panel`` returns the picture as a
``uint8 [H, W, 3]`` array; ``render_predictions`` lays several out in a matplotlib figure with a legend and
writes a PNG atomically.
"""

from __future__ import annotations

import colorsys
import functools
import io
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from cnnlab._io import atomic_write, save_figure

__all__ = ["class_palette", "colorize", "overlay", "panel", "render_predictions", "write_png"]

IGNORE_COLOR = (255, 255, 255)


LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, as PIL's convert("L")


@functools.lru_cache(maxsize=8)
def _palette(n: int) -> np.ndarray:
    from matplotlib import colormaps

    tab = np.round(np.asarray(colormaps["tab20"].colors) * 255).astype(np.uint8)
    tab = np.concatenate([tab[0::2], tab[1::2]])  # the strong shades first, then the light ones
    tab = tab[tab.max(1) != tab.min(1)]  # tab20's two greys out
    extra = [np.round(np.array(colorsys.hsv_to_rgb(k * 0.6180339887 % 1, 0.85, 0.9)) * 255)
             for k in range(max(0, n - 1 - len(tab)))]
    pal = np.concatenate([np.zeros((1, 3), np.uint8), tab, np.asarray(extra, np.uint8).reshape(-1, 3)])
    pal.flags.writeable = False
    return pal[:n]


def class_palette(n: int = 256) -> np.ndarray:
    """``[n, 3]`` uint8 class colours: 0 (background) black; 1.. tab20's 18 non-grey colours (strong shades
    first), then golden-ratio hues at saturation 0.85. Every class >= 1 has r, g, b not all equal."""
    return _palette(n).copy()


def _np(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def colorize(mask: Any, palette: np.ndarray | None = None, ignore_index: int = 255) -> np.ndarray:
    """``[H, W]`` labels -> ``[H, W, 3]`` uint8 colours (:func:`class_palette`); ``ignore_index`` white."""
    m = _np(mask).astype(np.int64)
    pal = _palette(256) if palette is None else np.asarray(palette, dtype=np.uint8)
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
    """A grey copy of the image (BT.601 luma) with non-background classes blended in their colour (``alpha``),
    ``[H, W, 3]`` uint8: a class keeps its hue on objects of any colour, and only classes are coloured."""
    rgb = _rgb(image).astype(np.float64)
    m = _np(mask)
    if rgb.shape[:2] != m.shape:
        raise ValueError(f"image {rgb.shape[:2]} and mask {m.shape} differ in size")
    grey = np.round(rgb @ LUMA)[..., None]
    col = colorize(m, palette, ignore_index).astype(np.float64)
    a = np.where((m != 0)[..., None], alpha, 0.0)
    return np.round(grey * (1 - a) + col * a).astype(np.uint8)


def panel(image: Any, target: Any, pred: Any, alpha: float = 0.5, gap: int = 2, **kw: Any) -> np.ndarray:
    """``image | ground-truth overlay | prediction overlay`` side by side, ``gap`` white columns apart
    (``target=None``: ``image | prediction overlay``)."""
    parts = [_rgb(image), *(overlay(image, m, alpha, **kw) for m in (target, pred) if m is not None)]
    h = parts[0].shape[0]
    sep = np.full((h, gap, 3), 255, dtype=np.uint8)
    return np.concatenate([p for part in parts for p in (sep, part)][1:], axis=1)


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
    pal = class_palette(256)
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
