"""Colour overlays: palette, blending, the three-panel array and the PNG figure."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import torch

from cnnlab.segmentation.render import class_palette, colorize, overlay, panel, render_predictions, write_png


def _scene():
    img = torch.arange(64 * 48, dtype=torch.float32).reshape(1, 64, 48) % 256 / 255  # grey ramp in [0, 1]
    t = torch.zeros(64, 48, dtype=torch.long)
    t[10:30, 5:25] = 1
    t[40:60, 20:45] = 15
    t[0, :] = 255
    return img, t


def test_class_palette_and_colorize():
    pal = class_palette()
    # background black, then tab20's strong shades (blue, orange, ...), never grey (see test_overlay_colours)
    assert pal[0].tolist() == [0, 0, 0] and pal[1].tolist() == [31, 119, 180] and pal[2].tolist() == [255, 127, 14]
    assert pal.shape == (256, 3) and len({tuple(c) for c in pal[:21]}) == 21
    _, t = _scene()
    col = colorize(t)
    assert col.shape == (64, 48, 3) and col.dtype == np.uint8
    assert col[0, 0].tolist() == [255, 255, 255] and col[20, 10].tolist() == [31, 119, 180]


def test_overlay_blends_only_objects():
    img, t = _scene()
    ov = overlay(img, t, alpha=0.5)
    grey = np.round(img[0].numpy() * 255).astype(np.uint8)
    assert ov.shape == (64, 48, 3)
    assert (ov[35, 0] == grey[35, 0]).all()  # background: the image itself
    expect = np.round(grey[20, 10] * 0.5 + np.array([31, 119, 180]) * 0.5)
    assert ov[20, 10].tolist() == expect.tolist()


def test_panel_and_png_sizes(tmp_path):
    img, t = _scene()
    pred = torch.roll(t, 3, dims=1)
    arr = panel(img, t, pred, gap=2)
    assert arr.shape == (64, 3 * 48 + 4, 3)
    write_png(tmp_path / "panel.png", arr)
    back = matplotlib.image.imread(tmp_path / "panel.png")
    assert back.shape[:2] == (64, 148)
    assert np.allclose(back[..., :3] * 255, arr, atol=0.5)

    logits = torch.nn.functional.one_hot(pred.clamp(max=20), 21).permute(2, 0, 1).float()
    fig = render_predictions(img[None].repeat(3, 1, 1, 1), t[None].repeat(3, 1, 1), logits[None].repeat(3, 1, 1, 1),
                             classes=["background", "aeroplane"] + [f"c{i}" for i in range(2, 21)],
                             path=tmp_path / "pred.png", dpi=100, scale=2.0)
    png = matplotlib.image.imread(tmp_path / "pred.png")
    w, h = fig.get_size_inches() * 100
    assert png.shape[:2] == (round(h), round(w))
    assert png.shape[0] > 3 * 64 * 2 and png.shape[1] > 3 * 48 * 2  # three rows, three panels, 2x scale
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["background", "aeroplane", "c15", "c20"]  # what appears (255 -> 20 by the clamp above)
