"""The SPP layer (He et al. 2014, §2.3): fixed output length for any window; one level = RoI pooling."""

import pytest
import torch
from torchvision.ops import roi_pool

from cnnlab.detection.spp import SpatialPyramidPool, pyramid_length, spatial_pyramid_pool, window_pyramid


def test_output_length_does_not_depend_on_the_window_size():
    feats = torch.randn(2, 8, 16, 16)
    boxes = [torch.tensor([[0.0, 0.0, 16.0, 16.0], [8.0, 8.0, 24.0, 40.0]]),
             torch.tensor([[4.0, 4.0, 12.0, 12.0], [0.0, 0.0, 128.0, 128.0], [100.0, 60.0, 104.0, 64.0]])]
    spp = SpatialPyramidPool((4, 2, 1), spatial_scale=1 / 8)
    out = spp(feats, boxes)
    assert out.shape == (5, 8 * 21) == (5, spp.output_length(8)) and pyramid_length(256, (4, 2, 1)) == 5376
    # the 1x1 level (last C numbers) is the window's max; the whole-image window's is the map's max
    assert torch.equal(out[3, -8:], feats[1].amax(dim=(1, 2)))
    # box (8, 8, 24, 40) at stride 8 -> columns 1..3, rows 1..5 (roi_pool's rounding, end inclusive)
    assert torch.equal(out[1, -8:], feats[0, :, 1:6, 1:4].amax(dim=(1, 2)))
    # its 4x4 level: row bins floor(5i/4)..ceil(5(i+1)/4) -> first bin rows 1..2, columns 1..1
    assert torch.equal(out[1, :8 * 16].view(8, 4, 4)[:, 0, 0], feats[0, :, 1:3, 1:2].amax(dim=(1, 2)))


@pytest.mark.parametrize("level", [1, 2, 4, 7])
def test_a_one_level_pyramid_is_roi_pooling(level):
    feats = torch.randn(2, 5, 16, 16)
    g = torch.Generator().manual_seed(level)
    xy = torch.rand(2, 12, 2, generator=g) * 100
    wh = torch.rand(2, 12, 2, generator=g) * 60 + 1
    boxes = [torch.cat([xy[i], xy[i] + wh[i]], 1) for i in range(2)]  # some run past the 128-px image's edge
    ours = window_pyramid(feats, boxes, (level,), spatial_scale=1 / 8)  # the per-window definition
    theirs = roi_pool(feats, boxes, output_size=level, spatial_scale=1 / 8).flatten(1)
    assert torch.equal(ours, theirs)


def test_the_batched_layer_equals_the_per_window_pyramid():
    feats = torch.randn(2, 6, 16, 16)
    g = torch.Generator().manual_seed(7)
    xy = torch.rand(2, 20, 2, generator=g) * 110
    boxes = [torch.cat([xy[i], xy[i] + torch.rand(20, 2, generator=g) * 70 + 1], 1) for i in range(2)]
    batched = spatial_pyramid_pool(feats, boxes, (4, 2, 1), 1 / 8)
    assert torch.equal(batched, window_pyramid(feats, boxes, (4, 2, 1), 1 / 8))


def test_no_boxes_gives_an_empty_batch_of_the_right_width():
    for pool in (spatial_pyramid_pool, window_pyramid):
        assert pool(torch.randn(1, 3, 4, 4), [torch.zeros(0, 4)], (2, 1)).shape == (0, 15)
