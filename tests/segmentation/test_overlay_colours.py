"""Overlays: one class is one colour in every panel, whatever the photo's colours, and no class is grey."""

import colorsys

import numpy as np
import torch

from cnnlab.segmentation.render import colorize, overlay, panel


def _two_objects(colour_a, colour_b, label=3):
    """A 20x40 RGB photo: a grey background, object A (left) and object B (right), both of class ``label``."""
    img = np.full((20, 40, 3), 90, np.uint8)
    img[4:16, 2:18] = colour_a
    img[4:16, 22:38] = colour_b
    mask = np.zeros((20, 40), np.int64)
    mask[4:16, 2:18] = label
    mask[4:16, 22:38] = label
    return torch.from_numpy(img).permute(2, 0, 1), torch.from_numpy(mask)


def test_no_class_colour_is_grey():
    cols = colorize(np.arange(1, 255)[None])[0]  # every class but background (0) and ignore (255)
    assert not (cols.max(1) == cols.min(1)).any()
    assert colorize(np.zeros((1, 1), int))[0, 0].tolist() == [0, 0, 0]  # background may stay black
    assert len({tuple(c) for c in cols[:20]}) == 20  # the first classes all differ


def test_same_class_on_differently_coloured_objects_is_one_colour():
    # red and green of equal luminance (BT.601: 0.299*200 = 0.587*102 = 60): one output colour
    img, mask = _two_objects((200, 0, 0), (0, 102, 0))
    ov = overlay(img, mask)
    assert len({tuple(c) for c in ov[mask.numpy() == 3]}) == 1
    assert ov[10, 10].tolist() == ov[10, 30].tolist()
    # purple and yellow of any brightness: the class colour's hue, not a mix with the object's
    img, mask = _two_objects((128, 0, 128), (250, 230, 20), label=1)
    want = colorsys.rgb_to_hsv(*(colorize(np.ones((1, 1), int))[0, 0] / 255))[0]
    for y, x in ((10, 10), (10, 30)):
        got = colorsys.rgb_to_hsv(*(overlay(img, mask)[y, x] / 255))[0]
        assert abs(got - want) < 0.01, (got, want)
    # the background of an overlay panel is the grey copy; the first panel is the photo itself
    arr = panel(img, mask, mask, gap=2)
    assert arr[0, 0].tolist() == [90, 90, 90] and arr[10, 10].tolist() == [128, 0, 128]
    truth, pred = arr[:, 42:82], arr[:, 84:]
    assert np.array_equal(truth, pred) and np.array_equal(truth, overlay(img, mask))
    assert (truth[..., 0] == truth[..., 1])[mask.numpy() == 0].all()  # no colour but the classes'
