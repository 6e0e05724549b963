"""Dual Path Networks (Chen et al. 2017): parameter counts (timm / MXNet), dual-path bookkeeping."""

import pytest
import torch
from helpers import n_params
from torch import nn

from cnnlab.models import create_model
from cnnlab.models.dpn import DualPathBlock


@pytest.mark.parametrize("name, count, paper, num_features", [
    ("dpn68", 12_611_602, 12.6e6, 512 + 3 * 64 + 2 * 64),  # timm dpn68; issue: 12.6M
    ("dpn92", 37_668_392, 37.7e6, 2048 + 3 * 128 + 2 * 128),  # timm dpn92; paper Table 2: 37.7M
])
def test_param_counts_and_width(name, count, paper, num_features):
    with torch.device("meta"):
        model = create_model(name)
    assert n_params(model) == count
    assert abs(count - paper) <= 0.005 * paper
    assert model.num_features == num_features and model.classifier.in_channels == num_features


def test_depths_and_grouped_3x3():
    with torch.device("meta"):
        m92 = create_model("dpn92")
    names = [n for n, _ in m92.features.named_children()]
    for stage, depth in zip((2, 3, 4, 5), (3, 4, 20, 3)):
        assert sum(n.startswith(f"conv{stage}_") and n != "conv5_bn_ac" for n in names) == depth
    conv = m92.features.conv2_1.c3x3_b.conv  # r = k_r * bw / 256 = 96, G = 32
    assert (conv.in_channels, conv.out_channels, conv.groups) == (96, 96, 32)
    assert n_params(conv) == 96 * 3 * 3 * 96 // 32


def test_stems():
    with torch.device("meta"):
        m68, m92, s68 = create_model("dpn68"), create_model("dpn92"), create_model("dpn68", img_size=32)
    c = m68.features.conv1_1.conv
    assert (c.out_channels, c.kernel_size, c.stride) == (10, (3, 3), (2, 2))
    c = m92.features.conv1_1.conv
    assert (c.out_channels, c.kernel_size, c.stride) == (64, (7, 7), (2, 2))
    assert s68.features.conv1_1.conv.stride == (1, 1) and isinstance(s68.features.conv1_pool, nn.Identity)
    assert list(s68.state_dict()) == list(m68.state_dict())


def test_dual_path_block_adds_residual_and_concatenates_dense():
    """Eqs. 5-8: r' = r + h[:bw], d' = [d, h[bw:]] -- the dense input is passed on unchanged."""
    block = DualPathBlock(in_chs=64 + 48, num_1x1_a=32, num_3x3_b=32, bw=64, inc=16, groups=8).eval()
    r, d = torch.randn(2, 64, 6, 6), torch.randn(2, 48, 6, 6)
    with torch.inference_mode():
        r2, d2 = block((r, d))
        h = block.c1x1_c(block.c3x3_b(block.c1x1_a(torch.cat([r, d], 1))))
    assert r2.shape == (2, 64, 6, 6) and d2.shape == (2, 64, 6, 6)
    torch.testing.assert_close(r2, r + h[:, :64])
    torch.testing.assert_close(d2, torch.cat([d, h[:, 64:]], 1))


def test_stage_outputs_dpn92():
    """After conv2: residual 256 channels, dense 3*16 + 2*16 = 80 (one projection + two increments)."""
    with torch.device("meta"):
        model = create_model("dpn92")
    x = torch.empty(1, 3, 224, 224, device="meta")
    x = model.features.conv1_pool(model.features.conv1_1(x))
    for name in ("conv2_1", "conv2_2", "conv2_3"):
        x = getattr(model.features, name)(x)
    assert tuple(x[0].shape) == (1, 256, 56, 56) and tuple(x[1].shape) == (1, 80, 56, 56)
    assert model.forward_features(torch.empty(1, 3, 224, 224, device="meta")).shape == (1, 2688, 7, 7)


def test_small_input_forward_shapes():
    model = create_model("dpn68", num_classes=10, img_size=32).eval()
    with torch.inference_mode():
        feats = model.forward_features(torch.randn(1, 3, 32, 32))
        assert feats.shape == (1, 832, 4, 4)
        assert model.forward_head(feats).shape == (1, 10)
