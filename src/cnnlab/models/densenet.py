"""DenseNet (Huang, Liu, van der Maaten, Weinberger, "Densely Connected Convolutional Networks", CVPR 2017).

Layer l of a dense block receives the concatenation of all preceding feature maps,
``x_l = H_l([x_0, x_1, ..., x_{l-1}])`` (§3, Eq. 2), and adds ``k`` (the growth rate) channels.
``H_l`` is the DenseNet-B bottleneck BN-ReLU-Conv(1x1, 4k)-BN-ReLU-Conv(3x3, k); transition layers
between blocks are BN-ReLU-Conv(1x1)-AvgPool(2x2) and keep a fraction θ of the channels
(DenseNet-C compression, θ = 0.5). The ImageNet variants (Table 1) are torchvision's ``densenet*``
twins (same state_dict keys); ``densenet_bc_100_12`` is the CIFAR DenseNet-BC (L=100, k=12) of Table 2.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models._base import ClassifierMixin
from cnnlab.models._registry import SMALL_INPUT_MAX, register_model

__all__ = ["DenseNet", "densenet121", "densenet161", "densenet169", "densenet201", "densenet_bc_100_12"]

_PAPER = "Huang et al., Densely Connected Convolutional Networks, CVPR 2017"


class DenseLayer(nn.Module):
    """Composite function H_l of DenseNet-B (§3 "Bottleneck layers"):
    BN-ReLU-Conv(1x1, bn_size·k)-BN-ReLU-Conv(3x3, k), applied to the concatenated input."""

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, bn_size * growth_rate, kernel_size=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, padding=1, bias=False)
        self.drop_rate = float(drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu1(self.norm1(x)))
        out = self.conv2(self.relu2(self.norm2(out)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return out


class DenseBlock(nn.ModuleDict):
    """Dense block (§3, Eq. 2): x_l = H_l([x_0, ..., x_{l-1}]); output = [x_0, ..., x_L] (c_in + L·k channels)."""

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, bn_size: int,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size, drop_rate)
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """Transition layer (§3 "Pooling layers", "Compression"): BN-ReLU-Conv(1x1, ⌊θm⌋)-AvgPool(2x2, stride 2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(ClassifierMixin, nn.Module):
    """DenseNet-BC: stem, dense blocks joined by transitions, BN-ReLU, global average pool, linear classifier.

    ``stem``: ``"imagenet"`` (Table 1: 7x7/2 conv, BN-ReLU, 3x3/2 max-pool), ``"small"`` (3x3/1 conv,
    BN-ReLU, no pool; the small-input variant of the ImageNet nets) or ``"cifar"`` (§3 "Implementation
    details": a single 3x3 conv with 2k channels, as in the paper's CIFAR/SVHN nets).
    """

    classifier_name = "classifier"

    def __init__(
        self,
        growth_rate: int = 32,
        block_config: tuple[int, ...] = (6, 12, 24, 16),
        num_init_features: int = 64,
        bn_size: int = 4,
        compression: float = 0.5,
        drop_rate: float = 0.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        stem: str = "imagenet",
    ) -> None:
        super().__init__()
        if stem == "imagenet":
            layers = [
                ("conv0", nn.Conv2d(in_chans, num_init_features, kernel_size=7, stride=2, padding=3, bias=False)),
                ("norm0", nn.BatchNorm2d(num_init_features)),
                ("relu0", nn.ReLU(inplace=True)),
                ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
            ]
        elif stem == "small":
            layers = [
                ("conv0", nn.Conv2d(in_chans, num_init_features, kernel_size=3, padding=1, bias=False)),
                ("norm0", nn.BatchNorm2d(num_init_features)),
                ("relu0", nn.ReLU(inplace=True)),
            ]
        elif stem == "cifar":
            layers = [("conv0", nn.Conv2d(in_chans, num_init_features, kernel_size=3, padding=1, bias=False))]
        else:
            raise ValueError(f"unknown DenseNet stem {stem!r}")
        self.features = nn.Sequential(OrderedDict(layers))

        channels = num_init_features
        for i, num_layers in enumerate(block_config):
            block = DenseBlock(num_layers, channels, growth_rate, bn_size, drop_rate)
            self.features.add_module(f"denseblock{i + 1}", block)
            channels += num_layers * growth_rate
            if i != len(block_config) - 1:
                out_channels = int(math.floor(compression * channels))
                self.features.add_module(f"transition{i + 1}", Transition(channels, out_channels))
                channels = out_channels
        self.features.add_module("norm5", nn.BatchNorm2d(channels))

        self.num_features = channels
        self.num_classes = num_classes
        self.classifier = nn.Linear(channels, num_classes)

        # torchvision's initialisation ("official init from torch repo")
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.constant_(m.bias, 0)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.features(x))  # the final BN-ReLU before pooling

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return x if pre_logits else self.classifier(x)


def _densenet(growth_rate: int, block_config: tuple[int, ...], num_init_features: int, num_classes: int,
              in_chans: int, img_size: int, **kwargs) -> DenseNet:
    stem = "small" if img_size <= SMALL_INPUT_MAX else "imagenet"
    return DenseNet(growth_rate, block_config, num_init_features, num_classes=num_classes, in_chans=in_chans,
                    stem=stem, **kwargs)


_IMAGENET = dict(family="DenseNet", paper=_PAPER, params_source="torchvision 0.29", first_conv="features.conv0",
                 classifier="classifier", min_size=8)


@register_model(torchvision="densenet121", params=7_978_856, **_IMAGENET)
def densenet121(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """DenseNet-121 (Table 1): k=32, blocks (6, 12, 24, 16)."""
    return _densenet(32, (6, 12, 24, 16), 64, num_classes, in_chans, img_size, **kwargs)


@register_model(torchvision="densenet161", params=28_681_000, **_IMAGENET)
def densenet161(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """DenseNet-161 (Table 1): k=48, 96 stem channels, blocks (6, 12, 36, 24)."""
    return _densenet(48, (6, 12, 36, 24), 96, num_classes, in_chans, img_size, **kwargs)


@register_model(torchvision="densenet169", params=14_149_480, **_IMAGENET)
def densenet169(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """DenseNet-169 (Table 1): k=32, blocks (6, 12, 32, 32)."""
    return _densenet(32, (6, 12, 32, 32), 64, num_classes, in_chans, img_size, **kwargs)


@register_model(torchvision="densenet201", params=20_013_928, **_IMAGENET)
def densenet201(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """DenseNet-201 (Table 1): k=32, blocks (6, 12, 48, 32)."""
    return _densenet(32, (6, 12, 48, 32), 64, num_classes, in_chans, img_size, **kwargs)


@register_model(family="DenseNet", paper=_PAPER, params=769_162,
                params_source="exact count at 10 classes = osmr/imgclsmob; paper Table 2: 0.8M",
                default_size=32, num_classes=10, min_size=4, first_conv="features.conv0", classifier="classifier")
def densenet_bc_100_12(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, **kwargs) -> nn.Module:
    """DenseNet-BC (L=100, k=12) for CIFAR (Table 2, 0.8M params): a 3x3 conv to 2k=24 channels, three dense
    blocks of (L-4)/6 = 16 bottleneck layers, compression θ=0.5. The same net at every ``img_size``."""
    return DenseNet(12, (16, 16, 16), 24, compression=0.5, num_classes=num_classes, in_chans=in_chans,
                    stem="cifar", **kwargs)
