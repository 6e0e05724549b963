"""MnasNet (Tan et al., CVPR 2019) facts, checked against torchvision's layout and published complexity."""

import pytest
import torch
import torchvision
from helpers import count_mult_adds, meta_model

import cnnlab
from cnnlab.models.mnasnet import MBConv, _get_depths


@pytest.mark.parametrize("name, alpha, depths", [
    ("mnasnet0_5", 0.5, [16, 8, 16, 24, 40, 48, 96, 160]), ("mnasnet0_75", 0.75, [24, 16, 24, 32, 64, 72, 144, 240]),
    ("mnasnet1_0", 1.0, [32, 16, 24, 40, 80, 96, 192, 320]), ("mnasnet1_3", 1.3, [40, 24, 32, 56, 104, 128, 248, 416]),
])
def test_depth_rounding(name, alpha, depths):
    assert _get_depths(alpha) == depths  # torchvision's _get_depths values
    model = meta_model(name)
    assert model.layers[0].out_channels == depths[0]  # version 2: the stem is scaled too
    assert [model.layers[i][0].layers[6].out_channels for i in range(8, 14)] == depths[2:]


@pytest.mark.parametrize("name, weights", [
    ("mnasnet0_5", "MNASNet0_5_Weights"), ("mnasnet0_75", "MNASNet0_75_Weights"),
    ("mnasnet1_0", "MNASNet1_0_Weights"), ("mnasnet1_3", "MNASNet1_3_Weights"),
])
def test_mult_adds_match_torchvision_metadata(name, weights):
    gflops = getattr(torchvision.models, weights).IMAGENET1K_V1.meta["_ops"]  # metadata only, no download
    assert count_mult_adds(meta_model(name)) == pytest.approx(gflops * 1e9, rel=0.005)


def test_state_dict_version_2_round_trips_into_torchvision():
    ours = cnnlab.create_model("mnasnet0_5")
    sd = ours.state_dict()
    assert sd._metadata[""]["version"] == 2
    tv = torchvision.models.mnasnet0_5(weights=None)
    tv.load_state_dict(sd)  # a version-1 state_dict would make torchvision rebuild a 32-channel stem
    assert tv.layers[0].out_channels == 16


def test_blocks_and_small_input():
    model = meta_model("mnasnet1_0")
    blocks = [m for m in model.modules() if isinstance(m, MBConv)]
    assert len(blocks) == 16 and sum(b.apply_residual for b in blocks) == 10
    assert [b.layers[3].kernel_size[0] for b in blocks] == [3] * 3 + [5] * 6 + [3] * 2 + [5] * 4 + [3]
    assert model.forward_features(torch.empty(1, 3, 224, 224, device="meta")).shape == (1, 1280, 7, 7)
    small = meta_model("mnasnet1_0", img_size=32)
    assert small.layers[0].stride == (1, 1) and small.layers[8][0].layers[3].stride == (1, 1)
    assert small.forward_features(torch.empty(1, 3, 32, 32, device="meta")).shape == (1, 1280, 4, 4)
