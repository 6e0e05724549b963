"""ResNet / ResNeXt / WRN (ImageNet) family facts: He et al. 2016 Table 1, Xie et al. 2017, torchvision."""

import pytest
import torch
from helpers import n_params
from torch import nn

from cnnlab.models import create_model
from cnnlab.models.resnet import BasicBlock, Bottleneck, resnet18


def stage_shapes(model: nn.Module, size: int) -> list[tuple[int, ...]]:
    """Output shape of layer1..4 (computed on the meta device: shapes only)."""
    shapes = []
    hooks = [getattr(model, f"layer{i}").register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
             for i in range(1, 5)]
    model(torch.empty(1, 3, size, size, device="meta"))
    for h in hooks:
        h.remove()
    return shapes


@pytest.mark.parametrize("name, widths", [
    ("resnet18", (64, 128, 256, 512)),
    ("resnet50", (256, 512, 1024, 2048)),
    ("wide_resnet50_2", (256, 512, 1024, 2048)),
])
def test_stage_shapes_at_224_follow_table1(name, widths):
    with torch.device("meta"):
        model = create_model(name)
    assert stage_shapes(model, 224) == [(c, s, s) for c, s in zip(widths, (56, 28, 14, 7))]


def test_small_input_variant_keeps_keys_and_resolution():
    with torch.device("meta"):
        big, small = create_model("resnet50"), create_model("resnet50", img_size=32)
    assert list(big.state_dict()) == list(small.state_dict())
    assert (big.conv1.kernel_size, big.conv1.stride) == ((7, 7), (2, 2))
    assert (small.conv1.kernel_size, small.conv1.stride, small.conv1.padding) == ((3, 3), (1, 1), (1, 1))
    assert isinstance(small.maxpool, nn.Identity) and isinstance(big.maxpool, nn.MaxPool2d)
    assert stage_shapes(small, 32)[-1] == (2048, 4, 4)


@pytest.mark.parametrize("name, layer_params", [
    ("resnet50", 64 * 64 * 9),  # layer1.0.conv2: plain 3x3 on 64 channels
    ("resnext50_32x4d", 128 * 4 * 9),  # 32 groups x 4 channels: 128 -> 128 grouped, 4 inputs per filter
    ("wide_resnet50_2", 128 * 128 * 9),  # twice the bottleneck width
])
def test_bottleneck_3x3_width_and_groups(name, layer_params):
    with torch.device("meta"):
        model = create_model(name)
    assert n_params(model.layer1[0].conv2) == layer_params


def test_downsampling_is_on_the_3x3_conv_with_projection_shortcut():
    with torch.device("meta"):
        model = create_model("resnet50")
    block = model.layer2[0]
    assert isinstance(block, Bottleneck)
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)
    assert block.downsample[0].stride == (2, 2) and block.downsample[0].kernel_size == (1, 1)
    assert model.layer2[1].downsample is None


def test_depths_and_block_types():
    with torch.device("meta"):
        r34, r152 = create_model("resnet34"), create_model("resnet152")
    assert [len(getattr(r34, f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]
    assert [len(getattr(r152, f"layer{i}")) for i in range(1, 5)] == [3, 8, 36, 3]
    assert isinstance(r34.layer1[0], BasicBlock) and isinstance(r152.layer1[0], Bottleneck)


def test_plain_resnets_have_no_se_keys():
    with torch.device("meta"):
        model = create_model("resnet50")
    assert all(b.se is None for b in model.modules() if isinstance(b, Bottleneck))
    assert not [k for k in model.state_dict() if ".se." in k]


def test_in_chans_and_zero_init_residual():
    model = create_model("resnet18", in_chans=1, zero_init_residual=True)
    assert model.conv1.weight.shape == (64, 1, 7, 7)
    assert all(torch.count_nonzero(b.bn2.weight) == 0 for b in model.modules() if isinstance(b, BasicBlock))


def test_min_size_is_the_smallest_trainable_input():
    """min_size=9: at 8x8 the small-input net's last stage is 1x1 and BatchNorm cannot train at batch 1."""
    assert create_model("resnet18", img_size=9).pretrained_cfg["min_size"] == 9
    model = resnet18(num_classes=10, img_size=9).train()
    assert model(torch.randn(1, 3, 9, 9)).shape == (1, 10)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        resnet18(num_classes=10, img_size=8).train()(torch.randn(1, 3, 8, 8))


def test_forward_features_is_the_last_feature_map():
    model = create_model("resnet18", num_classes=5, img_size=32).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        feats = model.forward_features(x)
        assert feats.shape == (2, 512, 4, 4)
        torch.testing.assert_close(model.forward_head(feats, pre_logits=True), feats.mean((2, 3)))
