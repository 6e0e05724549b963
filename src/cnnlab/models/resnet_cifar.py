"""CIFAR residual networks: ResNet-20..110 and plain baselines, and WRN-28-10.

- He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, §4.2: a 3x3 conv with 16
  filters, then 3 stages of ``n`` basic blocks on 32x32, 16x16 and 8x8 maps with 16, 32 and 64
  filters (6n+2 layers), global average pool, ``fc``. Shortcuts are identities; where the shape
  changes they subsample by 2 and zero-pad the new channels ("option A", parameter-free), so a
  ResNet has exactly the parameters of its plain counterpart (Fig. 6, Table 6: 0.27M, 0.46M, 0.66M,
  0.85M and 1.7M for n = 3, 5, 7, 9, 18).
- Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016: WRN-d-k with pre-activation wide
  basic blocks BN-ReLU-conv3x3-(dropout)-BN-ReLU-conv3x3 (§2, Fig. 1d, Table 1), widths
  16, 16k, 32k, 64k and (d-4)/6 blocks per stage; WRN-28-10 has 36.5M parameters (Table 4).

These are CIFAR networks: the same architecture runs at any input size (global average pooling).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models._base import ClassifierMixin
from cnnlab.models._registry import register_model
from cnnlab.models.resnet import conv1x1, conv3x3

__all__ = ["CifarBasicBlock", "CifarResNet", "ShortcutA", "WideBasicBlock", "WideResNet"]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
_PAPER = "He et al., Deep Residual Learning for Image Recognition, CVPR 2016"
_PAPER_WRN = "Zagoruyko & Komodakis, Wide Residual Networks, BMVC 2016"
# Two stride-2 stages: the last stage must see a 2x2 map so BatchNorm trains with batch size 1:
# ceil(ceil(s/2)/2) >= 2  <=>  s >= 5.
_MIN_SIZE = 5


class ShortcutA(nn.Module):
    """Option-A shortcut (He et al. 2016, §3.3, §4.2): ``x[:, :, ::s, ::s]`` zero-padded from
    ``in_planes`` to ``planes`` channels (half the new channels on each side); no parameters."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.pad = planes - in_planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))


class CifarBasicBlock(nn.Module):
    """Two 3x3 convs with BN: ``y = relu(F(x) + shortcut(x))`` (He et al. 2016, Fig. 2);
    ``residual=False`` drops the shortcut, giving the "plain" block of Fig. 6 (left)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, residual: bool = True) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.residual = residual
        self.shortcut = None
        if residual and (stride != 1 or in_planes != planes):
            self.shortcut = ShortcutA(in_planes, planes, stride)
        self.se: nn.Module | None = None  # filled by senet.add_se
        self.se_channels = planes if residual else 0  # plain blocks have no residual branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        if self.residual:
            out = out + (x if self.shortcut is None else self.shortcut(x))
        return self.relu(out)


class CifarResNet(ClassifierMixin, nn.Module):
    """conv3x3(16) + BN + ReLU, ``layer1..3`` of ``n`` blocks (16, 32, 64 planes; strides 1, 2, 2),
    global average pool, ``fc`` (He et al. 2016, §4.2)."""

    classifier_name = "fc"

    def __init__(self, n: int, num_classes: int = 10, in_chans: int = 3, residual: bool = True) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_chans, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.in_planes = 16
        self.layer1 = self._make_layer(16, n, 1, residual)
        self.layer2 = self._make_layer(32, n, 2, residual)
        self.layer3 = self._make_layer(64, n, 2, residual)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_classes = num_classes
        self.num_features = 64
        self.fc = nn.Linear(64, num_classes)
        # He et al. 2015 ("Delving deep into rectifiers") initialisation, as §4.2 states.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes: int, n: int, stride: int, residual: bool) -> nn.Sequential:
        blocks = []
        for s in [stride] + [1] * (n - 1):
            blocks.append(CifarBasicBlock(self.in_planes, planes, s, residual))
            self.in_planes = planes
        return nn.Sequential(*blocks)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)


class WideBasicBlock(nn.Module):
    """Pre-activation wide block (Zagoruyko & Komodakis 2016, Fig. 1d):
    ``y = conv2(relu(bn2(dropout(conv1(relu(bn1(x))))))) + shortcut(x)``; the shortcut is a 1x1
    conv on the pre-activated input where the shape changes, else the identity."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.dropout = nn.Dropout(drop_rate)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.shortcut = conv1x1(in_planes, planes, stride) if stride != 1 or in_planes != planes else None
        self.se: nn.Module | None = None  # filled by senet.add_se (after conv2: no BN ends the branch)
        self.se_channels = planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.relu(self.bn1(x))
        out = self.conv1(o)
        out = self.conv2(self.relu(self.bn2(self.dropout(out))))
        if self.se is not None:
            out = self.se(out)
        return out + (x if self.shortcut is None else self.shortcut(o))


class WideResNet(ClassifierMixin, nn.Module):
    """WRN-d-k (Zagoruyko & Komodakis 2016, Table 1): conv3x3(16), three stages of (d-4)/6 wide
    blocks with 16k, 32k, 64k planes (strides 1, 2, 2), BN-ReLU, global average pool, ``fc``."""

    classifier_name = "fc"

    def __init__(self, depth: int = 28, widen_factor: int = 10, num_classes: int = 10, in_chans: int = 3,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = [16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = conv3x3(in_chans, 16)
        self.in_planes = 16
        self.layer1 = self._make_layer(widths[0], n, 1, drop_rate)
        self.layer2 = self._make_layer(widths[1], n, 2, drop_rate)
        self.layer3 = self._make_layer(widths[2], n, 2, drop_rate)
        self.bn = nn.BatchNorm2d(widths[2])
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_classes = num_classes
        self.num_features = widths[2]
        self.fc = nn.Linear(widths[2], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes: int, n: int, stride: int, drop_rate: float) -> nn.Sequential:
        blocks = []
        for s in [stride] + [1] * (n - 1):
            blocks.append(WideBasicBlock(self.in_planes, planes, s, drop_rate))
            self.in_planes = planes
        return nn.Sequential(*blocks)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        return self.relu(self.bn(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)


def _cifar_resnet(n: int, num_classes: int, in_chans: int, residual: bool = True, **kwargs: Any) -> CifarResNet:
    return CifarResNet(n, num_classes=num_classes, in_chans=in_chans, residual=residual, **kwargs)


# Registry counts are exact at the nets' native 10 CIFAR classes (paper Table 6 rounds them);
# tests/models/test_resnet_cifar.py checks them against Table 6.
_COMMON: dict[str, Any] = dict(family="ResNet-CIFAR", params_rtol=0, first_conv="conv1", classifier="fc",
                               default_size=32, num_classes=10, min_size=_MIN_SIZE, mean=CIFAR10_MEAN, std=CIFAR10_STD)
_SRC = "exact count at 10 classes (paper Table 6: {})"


@register_model(paper=_PAPER, params=269_722, params_source=_SRC.format("0.27M"), **_COMMON)
def resnet20(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, **kwargs: Any) -> nn.Module:
    """ResNet-20 (§4.2, n=3)."""
    return _cifar_resnet(3, num_classes, in_chans, **kwargs)


@register_model(paper=_PAPER, params=464_154, params_source=_SRC.format("0.46M"), **_COMMON)
def resnet32(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, **kwargs: Any) -> nn.Module:
    """ResNet-32 (§4.2, n=5)."""
    return _cifar_resnet(5, num_classes, in_chans, **kwargs)


@register_model(paper=_PAPER, params=658_586, params_source=_SRC.format("0.66M"), **_COMMON)
def resnet44(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, **kwargs: Any) -> nn.Module:
    """ResNet-44 (§4.2, n=7)."""
    return _cifar_resnet(7, num_classes, in_chans, **kwargs)


@register_model(paper=_PAPER, params=853_018, params_source=_SRC.format("0.85M"), **_COMMON)
def resnet56(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, **kwargs: Any) -> nn.Module:
    """ResNet-56 (§4.2, n=9)."""
    return _cifar_resnet(9, num_classes, in_chans, **kwargs)


@register_model(paper=_PAPER, params=1_727_962, params_source=_SRC.format("1.7M"), **_COMMON)
def resnet110(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, **kwargs: Any) -> nn.Module:
    """ResNet-110 (§4.2, n=18)."""
    return _cifar_resnet(18, num_classes, in_chans, **kwargs)


@register_model(paper=_PAPER, params=269_722, params_source=_SRC.format("0.27M, as ResNet-20"), **_COMMON)
def plain20(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, **kwargs: Any) -> nn.Module:
    """Plain-20 (Fig. 6 left): ResNet-20 without shortcuts, the degradation baseline."""
    return _cifar_resnet(3, num_classes, in_chans, residual=False, **kwargs)


@register_model(paper=_PAPER, params=853_018, params_source=_SRC.format("0.85M, as ResNet-56"), **_COMMON)
def plain56(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, **kwargs: Any) -> nn.Module:
    """Plain-56 (Fig. 6 left): ResNet-56 without shortcuts; trains worse than plain-20."""
    return _cifar_resnet(9, num_classes, in_chans, residual=False, **kwargs)


@register_model(paper=_PAPER_WRN, params=36_479_194,
                params_source="exact count at 10 classes (paper Table 4: 36.5M)",
                **{**_COMMON, "family": "WideResNet-CIFAR"})
def wrn28_10(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, drop_rate: float = 0.0,
             **kwargs: Any) -> nn.Module:
    """WRN-28-10: depth 28 (4 wide blocks per stage), widen factor 10; ``drop_rate`` 0.3 in §3."""
    return WideResNet(28, 10, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate, **kwargs)
