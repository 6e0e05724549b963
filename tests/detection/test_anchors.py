"""Anchors vs torchvision's AnchorGenerator (same sizes and ratios)."""

import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

from cnnlab.detection.anchors import AnchorGrid, anchor_grid, cell_anchors


def _torchvision(sizes, ratios, feat, img):
    gen = AnchorGenerator((tuple(sizes),), (tuple(ratios),))
    images = ImageList(torch.zeros(1, 1, *img), [tuple(img)])
    return gen(images, [torch.zeros(1, 8, *feat)])[0]


def test_cell_anchors_k9_by_hand():
    a = cell_anchors()
    assert a.shape == (9, 4)
    # ratio 1 (middle three): squares of side 16, 32, 64 centred at 0
    assert a[3:6].tolist() == [[-8, -8, 8, 8], [-16, -16, 16, 16], [-32, -32, 32, 32]]
    w, h = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
    assert torch.all((h[:3] < w[:3]) & (h[6:] > w[6:]))  # ratio h/w 0.5 is wide, 2 is tall


def test_anchor_grid_equals_torchvision():
    for sizes, ratios, feat, img in [((16, 32, 64), (0.5, 1.0, 2.0), (8, 8), (128, 128)),
                                     ((16, 32, 64), (0.5, 1.0, 2.0), (16, 16), (128, 128)),
                                     ((24, 48), (0.5, 1.0, 2.0, 3.0), (5, 7), (80, 112))]:
        mine = anchor_grid(feat, img, sizes, ratios)
        assert mine.shape == (feat[0] * feat[1] * len(sizes) * len(ratios), 4)
        assert torch.equal(mine, _torchvision(sizes, ratios, feat, img))


def test_anchor_module_caches_and_counts():
    grid = AnchorGrid()
    assert grid.num_anchors == 9
    a = grid((8, 8), (128, 128), torch.float32, torch.device("cpu"))
    assert a is grid((8, 8), (128, 128), torch.float32, torch.device("cpu")) and a.shape == (576, 4)
    assert a[9:18].sub(a[:9]).tolist() == [[16.0, 0.0, 16.0, 0.0]] * 9  # next position: one stride to the right
