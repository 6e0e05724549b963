"""DenseNet family facts (Huang et al., CVPR 2017)."""

import pytest
import torch
from helpers import meta_model, n_params
from torch import nn

import cnnlab


def n_weight_layers(model: nn.Module) -> int:
    return sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())


@pytest.mark.parametrize("depth, blocks, k, width", [
    (121, (6, 12, 24, 16), 32, 1024), (161, (6, 12, 36, 24), 48, 2208),
    (169, (6, 12, 32, 32), 32, 1664), (201, (6, 12, 48, 32), 32, 1920),
])
def test_imagenet_densenets_follow_table1(depth, blocks, k, width):
    model = meta_model(f"densenet{depth}")
    # The name counts weight layers: conv0, 2 convs per dense layer, 3 transition convs, the classifier.
    assert n_weight_layers(model) == depth == 1 + 2 * sum(blocks) + 3 + 1
    for i, n in enumerate(blocks, 1):
        assert len(model.features.get_submodule(f"denseblock{i}")) == n
    assert model.features.denseblock1.denselayer1.conv2.out_channels == k  # growth rate
    assert model.features.denseblock1.denselayer1.conv1.out_channels == 4 * k  # bottleneck 4k
    assert model.num_features == width == model.classifier.in_features


def test_torchvision_key_names_and_dense_connectivity():
    model = meta_model("densenet121")
    sd = model.state_dict()
    assert "features.denseblock1.denselayer1.norm1.weight" in sd
    assert "features.transition3.conv.weight" in sd and "features.norm5.running_var" in sd
    block = model.features.denseblock2
    # layer l sees the stem output plus (l-1)·k maps of the earlier layers (Eq. 2)
    for i, layer in enumerate(block.values()):
        assert layer.conv1.in_channels == 128 + i * 32
    # transitions halve the channels (compression θ = 0.5) and the resolution
    assert sd["features.transition1.conv.weight"].shape == (128, 256, 1, 1)


def test_feature_map_sizes_imagenet_and_small_input():
    big = meta_model("densenet121")
    assert big.features.conv0.kernel_size == (7, 7) and hasattr(big.features, "pool0")
    assert big.forward_features(torch.empty(1, 3, 224, 224, device="meta")).shape == (1, 1024, 7, 7)
    small = meta_model("densenet121", img_size=32)
    assert small.features.conv0.kernel_size == (3, 3) and small.features.conv0.stride == (1, 1)
    assert not hasattr(small.features, "pool0")
    assert small.forward_features(torch.empty(1, 3, 32, 32, device="meta")).shape == (1, 1024, 4, 4)
    assert list(small.state_dict()) == list(big.state_dict())  # same keys, only conv0's kernel differs


def test_densenet_bc_100_12_matches_table2():
    model = meta_model("densenet_bc_100_12", num_classes=10)
    # L = 100 weight layers: conv0 + 3 blocks x 16 bottleneck layers x 2 convs + 2 transitions + classifier
    assert n_weight_layers(model) == 100
    assert model.features.conv0.out_channels == 24  # 2k
    assert model.features.denseblock1.denselayer1.conv1.out_channels == 48  # 4k
    assert model.features.transition1.conv.out_channels == (24 + 16 * 12) // 2  # θ = 0.5
    got = n_params(model)
    # Table 2 gives 0.8M (rounded to 0.1M); osmr/imgclsmob's DenseNet-BC-100 (k=12) CIFAR-10 has 769,162.
    assert got == 769_162
    assert abs(got - 800_000) <= 50_000
    assert n_params(meta_model("densenet_bc_100_12", num_classes=100)) == 800_032  # CIFAR-100 head


def test_densenet_bc_forward_relu_features():
    model = cnnlab.create_model("densenet_bc_100_12", num_classes=10).eval()
    with torch.inference_mode():
        feats = model.forward_features(torch.randn(2, 3, 32, 32))
    assert feats.shape == (2, 342, 8, 8)  # 24 + 16·12 → 108 → 108 + 192 → 150 → 150 + 192 = 342
    assert feats.min() >= 0  # final BN-ReLU precedes pooling
