"""Network in Network (Lin, Chen & Yan, "Network In Network", ICLR 2014).

Each mlpconv layer (§3.1, Eq. 2) is a k x k convolution followed by two 1x1 convolutions
("cascaded cross channel parametric pooling"), every one followed by ReLU. The last mlpconv
produces one map per class, and global average pooling (§3.2) replaces the fully connected
classifier: the net has no FC layer. Dropout follows every mlpconv but the last (§4.1).

ImageNet configuration: the authors' Caffe Model Zoo "NIN-Imagenet" (conv 11x11/4 96-96-96,
5x5 256-256-256, 3x3 384-384-384, 3x3 1024-1024-1000, 3x3/2 max-pools, Caffe's ceil rounding):
7,595,176 parameters (computed; the model zoo quotes ~7.6M / a 29 MB caffemodel).
Small inputs (``img_size <= 64``): the CIFAR-10 model of §4.2 (5x5 192-160-96, 5x5 192-192-192,
3x3 192-192-classes; max- then average-pooling 3x3/2).

Interface: the classifier is the last mlpconv's final 1x1 conv (``classifier``);
``forward_features`` stops just before it, so ``pre_logits`` is the global average of the
previous 1x1 conv's maps (1024 wide on ImageNet, 192 on CIFAR).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models._base import ClassifierMixin
from cnnlab.models._registry import SMALL_INPUT_MAX, register_model

__all__ = ["MLPConv", "NiN", "nin"]

_PAPER = "Lin, Chen & Yan, Network In Network, ICLR 2014"


class MLPConv(nn.Sequential):
    """mlpconv (§3.1, Eq. 2): ``conv k x k -> ReLU -> (conv 1x1 -> ReLU)*`` for ``channels[1:]``."""

    def __init__(self, in_channels: int, channels: list[int], kernel_size: int, stride: int = 1,
                 padding: int = 0) -> None:
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels[0], kernel_size, stride, padding),
                                   nn.ReLU(inplace=True)]
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            layers += [nn.Conv2d(c_in, c_out, kernel_size=1), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class NiN(ClassifierMixin, nn.Module):
    """mlpconv blocks with pooling and dropout -> last mlpconv -> global average pooling (Fig. 2).

    ``blocks``: (channels, kernel, stride, padding, pool) per mlpconv; the last one's final 1x1
    conv (to ``num_classes`` maps) is ``self.classifier``.
    """

    classifier_name = "classifier"

    def __init__(self, blocks: list[tuple[list[int], int, int, int, nn.Module | None]], num_classes: int = 1000,
                 in_chans: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_chans
        for i, (widths, k, s, p, pool) in enumerate(blocks):
            layers.append(MLPConv(channels, widths, k, s, p))
            if i < len(blocks) - 1:
                layers += [pool, nn.Dropout(dropout)]
            channels = widths[-1]
        self.features = nn.Sequential(*layers)
        self.num_classes, self.num_features = num_classes, channels
        self.classifier = nn.Conv2d(channels, num_classes, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)  # the Caffe models rectify the class maps too
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        # The paper gives no initialisation; He init for the ReLU convs, N(0, 0.01) for the class maps.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.classifier.weight, 0.0, 0.01)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            return torch.flatten(self.global_pool(x), 1)
        x = self.relu(self.classifier(x))
        return torch.flatten(self.global_pool(x), 1)


def _imagenet_blocks() -> list[tuple[list[int], int, int, int, nn.Module | None]]:
    def pool() -> nn.Module:
        return nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)

    return [
        ([96, 96, 96], 11, 4, 0, pool()),  # 224 -> 54 -> 27
        ([256, 256, 256], 5, 1, 2, pool()),  # 27 -> 13
        ([384, 384, 384], 3, 1, 1, pool()),  # 13 -> 6
        ([1024, 1024], 3, 1, 1, None),  # + classifier 1x1 -> num_classes, 6x6 global average
    ]


def _cifar_blocks() -> list[tuple[list[int], int, int, int, nn.Module | None]]:
    return [
        ([192, 160, 96], 5, 1, 2, nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)),  # 32 -> 16
        ([192, 192, 192], 5, 1, 2, nn.AvgPool2d(kernel_size=3, stride=2, ceil_mode=True)),  # 16 -> 8
        ([192, 192], 3, 1, 1, None),  # + classifier 1x1 -> num_classes, 8x8 global average
    ]


@register_model(family="NiN", paper=_PAPER, params=7_595_176,
                params_source="Caffe Model Zoo NIN-Imagenet (computed; quoted ~7.6M)", min_size=6,
                first_conv="features.0.0", classifier="classifier")
def nin(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """NiN: ImageNet model (4 mlpconv) at ImageNet sizes, the CIFAR model (3 mlpconv) for small inputs."""
    blocks = _cifar_blocks if img_size <= SMALL_INPUT_MAX else _imagenet_blocks
    return NiN(blocks(), num_classes, in_chans, **kwargs)
