"""ShuffleNet v1 (Zhang et al. 2018) and v2 (Ma et al. 2018) facts."""

import pytest
import torch
from helpers import count_mult_adds, meta_model, n_params
from torch import nn

from cnnlab.models.shufflenet import ShuffleUnit

V1_TABLE = {  # g: (Table 1 stage widths, Table 2 MFLOPs of ShuffleNet 1x)
    1: ((144, 288, 576), 143e6), 2: ((200, 400, 800), 140e6), 3: ((240, 480, 960), 137e6),
    4: ((272, 544, 1088), 133e6), 8: ((384, 768, 1536), 137e6),
}


@pytest.mark.parametrize("g", sorted(V1_TABLE))
def test_shufflenet_v1_widths_and_complexity(g):
    widths, flops = V1_TABLE[g]
    model = meta_model(f"shufflenet_v1_g{g}")
    assert [model.get_submodule(f"stage{i}")[0].gconv3.out_channels + model.get_submodule(f"stage{i}")[0]
            .gconv1.in_channels for i in (2, 3, 4)] == list(widths)
    assert [len(model.get_submodule(f"stage{i}")) for i in (2, 3, 4)] == [4, 8, 4]
    assert count_mult_adds(model) == pytest.approx(flops, rel=0.02)
    units = [m for m in model.modules() if isinstance(m, ShuffleUnit)]
    assert units[0].gconv1.groups == 1  # Stage 2's first pointwise layer is not grouped (§3.3)
    assert all(u.gconv1.groups == g for u in units[1:]) and all(u.gconv3.groups == g for u in units)
    for u in units:
        assert u.dwconv.groups == u.dwconv.in_channels  # 3x3 depthwise
        assert u.gconv1.out_channels == (u.gconv3.out_channels + (u.gconv1.in_channels if u.stride == 2 else 0)) // 4


@pytest.mark.parametrize("g, reference, tol", [
    (3, 1.87e6, 0.005e6),  # mmpretrain shufflenet-v1-1x (g=3): 1.87M
    (3, 1.9e6, 0.05e6),    # megvii-model/ShuffleNet-Series (the authors' code): 1.9M
    (8, 2.4e6, 0.05e6),    # megvii-model/ShuffleNet-Series: 2.4M
])
def test_shufflenet_v1_params_match_reimplementations(g, reference, tol):
    assert abs(n_params(meta_model(f"shufflenet_v1_g{g}")) - reference) <= tol


def test_shufflenet_v1_unit_concat_and_add():
    unit = ShuffleUnit(240, 480, groups=3, stride=2).eval()
    x = torch.rand(1, 240, 8, 8)
    with torch.inference_mode():
        out = unit(x)
        assert out.shape == (1, 480, 4, 4)
        # the first 240 channels are the 3x3/2 average-pooled shortcut (non-negative input, ReLU keeps it)
        torch.testing.assert_close(out[:, :240], nn.functional.avg_pool2d(x, 3, 2, 1))
        unit1 = ShuffleUnit(480, 480, groups=3, stride=1).eval()
        assert unit1(out).shape == out.shape


def test_shufflenet_v1_channel_shuffle_is_used():
    unit = ShuffleUnit(60, 60, groups=3, stride=1).eval()
    x = torch.zeros(1, 60, 4, 4)
    x[:, :20] = 1.0  # excite group 0 only
    with torch.inference_mode():
        nn.init.ones_(unit.gconv1.weight)
        nn.init.dirac_(unit.dwconv.weight, groups=unit.dwconv.groups)  # identity: only the shuffle mixes groups
        nn.init.ones_(unit.gconv3.weight)
        branch = unit(x) - x
    # without the shuffle group 0's input could only reach group 0's outputs
    assert (branch[:, 20:].abs().sum() > 0).item()


@pytest.mark.parametrize("name, flops", [("shufflenet_v2_x0_5", 41e6), ("shufflenet_v2_x1_0", 146e6),
                                         ("shufflenet_v2_x1_5", 299e6), ("shufflenet_v2_x2_0", 591e6)])
def test_shufflenet_v2_complexity_table5(name, flops):
    assert count_mult_adds(meta_model(name)) == pytest.approx(flops, rel=0.02)


@pytest.mark.parametrize("name", ["shufflenet_v1_g3", "shufflenet_v2_x1_0"])
def test_small_input_drops_stem_stride_and_maxpool(name):
    big, small = meta_model(name), meta_model(name, img_size=32)
    assert big.conv1[0].stride == (2, 2) and isinstance(big.maxpool, nn.MaxPool2d)
    assert small.conv1[0].stride == (1, 1) and isinstance(small.maxpool, nn.Identity)
    assert big.forward_features(torch.empty(1, 3, 224, 224, device="meta")).shape[-2:] == (7, 7)
    assert small.forward_features(torch.empty(1, 3, 32, 32, device="meta")).shape[-2:] == (4, 4)
