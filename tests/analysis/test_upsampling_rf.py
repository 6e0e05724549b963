"""Receptive fields through upsampling (transposed conv, F.interpolate / nn.Upsample) and an FCN skip:
analytic (cnnlab.analysis.geometry) vs empirical (input pixels with a nonzero gradient).

An upsampled unit reads ``ceil(k'/s)`` (transposed conv) or ``taps`` (interpolation) adjacent input
units, so its box size is exact; the units are not evenly spaced over their support (2x bilinear:
outputs 2i-1 and 2i read the same two inputs), so the box position is exact only up to
``(j_in / 2)(1 - 1/s)`` -- the analytic centre is the mean over the taps. After a second upsampler
the input units are themselves unevenly spaced (0 or 2 j_in apart instead of j_in), so the field
size alternates around the reported (mean) one by up to ``j_in``.
"""

from __future__ import annotations

import math

import pytest
import torch
from test_receptive_field import empirical_box
from torch import nn

from cnnlab.analysis import inspect


class TinyFCN(nn.Module):
    """conv-pool x3 (strides 2, 4, 8), score at 1/8, 2x transposed conv, + skip from 1/4, 4x upsampling."""

    def __init__(self, final: str) -> None:
        super().__init__()
        self.c1, self.p1 = nn.Conv2d(1, 4, 3, padding=1), nn.MaxPool2d(2)
        self.c2, self.p2 = nn.Conv2d(4, 8, 3, padding=1), nn.MaxPool2d(2)
        self.c3, self.p3 = nn.Conv2d(8, 8, 3, padding=1), nn.MaxPool2d(2)
        self.score, self.score_skip = nn.Conv2d(8, 3, 1), nn.Conv2d(8, 3, 1)
        self.up2 = nn.ConvTranspose2d(3, 3, 4, stride=2, padding=1)
        self.fuse = nn.Identity()
        self.up = {"convt": nn.ConvTranspose2d(3, 3, 8, stride=4, padding=2),
                   "bilinear": nn.Upsample(scale_factor=4, mode="bilinear"),
                   "nearest": nn.Upsample(scale_factor=4, mode="nearest")}[final]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.p2(self.c2(self.p1(self.c1(x))))
        b = self.p3(self.c3(a))
        return self.up(self.fuse(self.up2(self.score(b)) + self.score_skip(a)))


SIZE = (1, 64, 64)
# layer, upsampling factor of the layer, jump of its input, slack from unevenly spaced input units
LAYERS = [("up2", 2, 8, 0), ("fuse", 2, 8, 0), ("up", 4, 4, 4)]


def _check(row, box, unit, factor, jump_in, slack):
    rf, jump, c0 = row.receptive_field, row.jump, row.rf_center
    top, left, bottom, right = box
    interior = all(p > 0 for p in (top, left)) and bottom < SIZE[1] - 1 and right < SIZE[2] - 1
    if interior:
        assert abs(bottom - top + 1 - rf) <= slack and abs(right - left + 1 - rf) <= slack, (row.name, unit, box)
    tol = jump_in / 2 * (1 - 1 / factor) + slack / 2 + 0.5
    for i, lo, hi in ((unit[0], top, bottom), (unit[1], left, right)):
        centre = c0 + i * jump
        if interior:
            assert abs((lo + hi) / 2 - centre) <= tol, (row.name, unit, box, centre)
        else:  # clipped at the image border: the clipped analytic box contains the support's inner edge
            assert lo <= centre + (rf - 1) / 2 + tol and hi >= centre - (rf - 1) / 2 - tol


@pytest.mark.parametrize("final", ["convt", "bilinear", "nearest"])
def test_upsampling_and_skip_fields_match_empirical(final):
    torch.manual_seed(0)
    net = TinyFCN(final)
    s = inspect(net, SIZE)
    assert s.output_shape == (1, 3, 64, 64)
    up2, fuse, up = s.row("up2"), s.row("fuse"), s.row("up")
    # score at 1/8: rf 18 (c1 3, p1 4, c2 8, p2 10, c3 18, p3 22); up2 adds ceil(4/2)-1 = 1 unit of 8
    assert s.row("score").receptive_field == 22 and s.row("score").jump == 8
    assert up2.receptive_field == 22 + 8 and up2.jump == 4
    assert fuse.receptive_field == 30 and fuse.jump == 4  # the skip (rf 10) lies inside
    taps = {"convt": math.ceil(8 / 4), "bilinear": 2, "nearest": 1}[final]
    assert up.receptive_field == 30 + (taps - 1) * 4 and up.jump == 1
    for layer, factor, jump_in, slack in LAYERS:
        row = s.row(layer)
        h = row.output_shape[-1]
        units = [(h // 2, h // 2), (h // 2 + 1, h // 2 - 1), (h // 3, 2 * h // 3 + 1), (0, 0), (h - 1, 1)]
        for unit in units:
            _check(row, empirical_box(net, layer, SIZE, unit), unit, factor, jump_in, slack)


def test_interpolate_geometry_rules():
    # align_corners=True: unit 0 sits on input unit 0 and the jump is (n_in - 1)/(n_out - 1)
    net = nn.Sequential(nn.Conv2d(1, 1, 3, stride=2, padding=1), nn.Upsample(size=(15, 29), mode="bilinear",
                                                                         align_corners=True))
    r = inspect(net, (1, 16, 32)).row("1")
    assert r.output_shape == (1, 1, 15, 29)
    assert r.jump == (2 * 7 / 14, 2 * 15 / 28) and r.rf_center == 0 and r.receptive_field == 5
    # downsampling with "area" is adaptive average pooling
    r = inspect(nn.Sequential(nn.Upsample(scale_factor=0.5, mode="area")), (1, 16, 16)).row("0")
    assert r.output_shape == (1, 1, 8, 8) and r.receptive_field == 2 and r.jump == 2
