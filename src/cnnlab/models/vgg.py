"""VGG (Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015; configurations A, B, D, E of Table 1 = VGG-11/13/16/19).

Stacks of 3x3 stride-1 convolutions (§2.1) separated by 2x2/2 max-pooling, then
fc 4096 -> 4096 -> classes. The ``_bn`` variants add batch normalisation after every conv
(torchvision). State dicts are torchvision's.

Small inputs (``img_size <= 64``): the convolutions are kept (same keys, so ImageNet conv weights
still load) but the fifth max-pool is dropped so 28x28 inputs survive (28 -> 14 -> 7 -> 3 -> 1);
the last map is globally average-pooled and the classifier is 512 -> 4096 -> 4096 -> classes, as in
weiaicunzai/pytorch-cifar100's VGG.
"""

from __future__ import annotations

from torch import nn

from cnnlab.models._base import PooledMLPMixin
from cnnlab.models._registry import SMALL_INPUT_MAX, register_model
from cnnlab.models.layers import init_weights_

__all__ = ["VGG", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]

_PAPER = "Simonyan & Zisserman, Very Deep Convolutional Networks for Large-Scale Image Recognition, ICLR 2015"

# Table 1: output channels of each 3x3 conv, "M" = 2x2 max-pool.
CFGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def make_layers(cfg: list[int | str], in_chans: int = 3, batch_norm: bool = False,
                small: bool = False) -> nn.Sequential:
    """conv3x3(pad 1) [-> BN] -> ReLU for each number, MaxPool2d(2, 2) for each "M"."""
    if small:
        cfg = cfg[:-1]  # drop the fifth pool
    layers: list[nn.Module] = []
    channels = in_chans
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        assert isinstance(v, int)
        layers.append(nn.Conv2d(channels, v, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        channels = v
    return nn.Sequential(*layers)


class VGG(PooledMLPMixin, nn.Module):
    """``features`` -> adaptive average pool (7x7; 1x1 for small inputs) -> fc6, fc7, fc8 (§2.1)."""

    def __init__(self, features: nn.Sequential, num_classes: int = 1000, small: bool = False,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.num_classes, self.num_features = num_classes, 4096
        pool = 1 if small else 7
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((pool, pool))
        self.classifier = nn.Sequential(
            nn.Linear(512 * pool * pool, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        init_weights_(self)  # torchvision's initialisation


def _vgg(cfg: str, batch_norm: bool, num_classes: int, in_chans: int, img_size: int, **kwargs) -> VGG:
    small = img_size <= SMALL_INPUT_MAX
    return VGG(make_layers(CFGS[cfg], in_chans, batch_norm, small), num_classes, small=small, **kwargs)



_COMMON = dict(family="VGG", paper=_PAPER, params_source="torchvision 0.29", min_size=16,
               first_conv="features.0", classifier="classifier.6")


@register_model(torchvision="vgg11", params=132_863_336, **_COMMON)
def vgg11(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """VGG-11 (configuration A)."""
    return _vgg("A", False, num_classes, in_chans, img_size, **kwargs)


@register_model(torchvision="vgg11_bn", params=132_868_840, **_COMMON)
def vgg11_bn(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """VGG-11 (A) with batch normalisation."""
    return _vgg("A", True, num_classes, in_chans, img_size, **kwargs)


@register_model(torchvision="vgg13", params=133_047_848, **_COMMON)
def vgg13(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """VGG-13 (configuration B)."""
    return _vgg("B", False, num_classes, in_chans, img_size, **kwargs)


@register_model(torchvision="vgg13_bn", params=133_053_736, **_COMMON)
def vgg13_bn(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """VGG-13 (B) with batch normalisation."""
    return _vgg("B", True, num_classes, in_chans, img_size, **kwargs)


@register_model(torchvision="vgg16", params=138_357_544, **_COMMON)
def vgg16(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """VGG-16 (configuration D)."""
    return _vgg("D", False, num_classes, in_chans, img_size, **kwargs)


@register_model(torchvision="vgg16_bn", params=138_365_992, **_COMMON)
def vgg16_bn(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """VGG-16 (D) with batch normalisation."""
    return _vgg("D", True, num_classes, in_chans, img_size, **kwargs)


@register_model(torchvision="vgg19", params=143_667_240, **_COMMON)
def vgg19(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """VGG-19 (configuration E)."""
    return _vgg("E", False, num_classes, in_chans, img_size, **kwargs)


@register_model(torchvision="vgg19_bn", params=143_678_248, **_COMMON)
def vgg19_bn(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """VGG-19 (E) with batch normalisation."""
    return _vgg("E", True, num_classes, in_chans, img_size, **kwargs)
