"""MobileNet v1 (Howard et al. 2017) and v2 (Sandler et al. 2018) facts."""

import pytest
import torch
from helpers import count_mult_adds, meta_model, n_params
from torch import nn

from cnnlab.models.mobilenet import DepthwiseSeparableConv, InvertedResidual


@pytest.mark.parametrize("alpha, exact, paper_params, paper_macs", [
    (1.0, 4_231_976, 4.2e6, 569e6), (0.75, 2_585_560, 2.6e6, 325e6),
    (0.5, 1_331_592, 1.3e6, 149e6), (0.25, 470_072, 0.5e6, 41e6),
])
def test_mobilenet_v1_width_multiplier_table6(alpha, exact, paper_params, paper_macs):
    model = meta_model("mobilenet_v1", width_mult=alpha)
    got = n_params(model)
    assert got == exact  # osmr/imgclsmob mobilenet_w1 / w3d4 / wd2 / wd4
    assert abs(got - paper_params) <= 0.05e6  # Table 6, rounded to 0.1M
    assert count_mult_adds(model, 224) == pytest.approx(paper_macs, rel=0.01)


@pytest.mark.parametrize("size, paper_macs", [(192, 418e6), (160, 290e6), (128, 186e6)])
def test_mobilenet_v1_resolution_multiplier_table7(size, paper_macs):
    model = meta_model("mobilenet_v1", img_size=size)
    assert count_mult_adds(model, size) == pytest.approx(paper_macs, rel=0.01)
    assert n_params(model) == 4_231_976  # ρ does not change the parameters


def test_mobilenet_v1_body_table1():
    model = meta_model("mobilenet_v1")
    blocks = [m for m in model.modules() if isinstance(m, DepthwiseSeparableConv)]
    assert len(blocks) == 13
    # 28 layers counting depthwise and pointwise convolutions separately (§4 / Table 1)
    assert sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules()) == 28
    for b in blocks:
        dw, pw = b.dw[0], b.pw[0]
        assert dw.groups == dw.in_channels == dw.out_channels and dw.kernel_size == (3, 3)
        assert pw.kernel_size == (1, 1) and pw.groups == 1
        assert isinstance(b.dw[2], nn.ReLU) and isinstance(b.pw[2], nn.ReLU)
    assert [b.dw[0].stride[0] for b in blocks] == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    assert model.forward_features(torch.empty(1, 3, 224, 224, device="meta")).shape == (1, 1024, 7, 7)


def test_mobilenet_v2_table2_and_table4():
    model = meta_model("mobilenet_v2")
    blocks = [m for m in model.modules() if isinstance(m, InvertedResidual)]
    assert len(blocks) == 17
    assert sum(b.use_res_connect for b in blocks) == 10  # every repeat after a stage's first block
    last = blocks[-1].conv
    assert isinstance(last[-1], nn.BatchNorm2d)  # linear bottleneck: no activation after the projection
    assert isinstance(blocks[1].conv[0][2], nn.ReLU6)
    assert blocks[1].conv[0][0].out_channels == 6 * 16  # expansion t = 6
    assert model.num_features == 1280
    assert count_mult_adds(model, 224) == pytest.approx(300e6, rel=0.01)  # Table 4: 300M mult-adds
    assert n_params(model) == 3_504_872  # torchvision; Table 4 reports 3.4M, ~3% lower
    assert n_params(model) == pytest.approx(3.4e6, rel=0.035)


@pytest.mark.parametrize("name, size, grid", [("mobilenet_v1", 32, 2), ("mobilenet_v2", 32, 4),
                                              ("mobilenet_v1", 224, 7), ("mobilenet_v2", 224, 7)])
def test_small_input_variants_keep_resolution(name, size, grid):
    model = meta_model(name, img_size=size)
    assert model.features[0][0].stride == ((1, 1) if size <= 64 else (2, 2))
    assert model.forward_features(torch.empty(1, 3, size, size, device="meta")).shape[-2:] == (grid, grid)


def test_mobilenet_v2_small_input_has_same_state_dict_shapes():
    big, small = meta_model("mobilenet_v2"), meta_model("mobilenet_v2", img_size=32)
    assert {k: v.shape for k, v in big.state_dict().items()} == {k: v.shape for k, v in small.state_dict().items()}
