"""ResNet, ResNeXt and Wide ResNet for ImageNet (torchvision twins: same state_dict keys and outputs).

- He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (Table 1: 18/34 layers with
  basic blocks, 50/101/152 with bottlenecks; Fig. 5). Downsampling sits on the 3x3 convolution of
  the bottleneck ("ResNet v1.5", as torchvision), and projection shortcuts (option B, Eq. 2) are used
  where the shape changes.
- Xie et al., "Aggregated Residual Transformations for Deep Neural Networks", CVPR 2017 (ResNeXt,
  Fig. 3c / Table 1: the bottleneck's 3x3 conv becomes a grouped conv with cardinality ``groups``).
- Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016 (the torchvision ``wide_resnet``
  variants double the bottleneck width, ``width_per_group=128``).

The block classes carry an ``se`` hook (``None`` here, so plain ResNets keep torchvision's keys):
:func:`cnnlab.models.senet.add_se` fills it with a Squeeze-and-Excitation module placed after
the last BN of the residual branch, before the addition (Hu et al. 2018, Fig. 3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from cnnlab.models._base import ClassifierMixin
from cnnlab.models._registry import SMALL_INPUT_MAX, register_model

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "conv1x1", "conv3x3"]

_PAPER = "He et al., Deep Residual Learning for Image Recognition, CVPR 2016"
_PAPER_RESNEXT = "Xie et al., Aggregated Residual Transformations for Deep Neural Networks, CVPR 2017"
_PAPER_WRN = "Zagoruyko & Komodakis, Wide Residual Networks, BMVC 2016"
# With the small-input stem the net downsamples by 8 (layer2-4); the last stage must still see a
# 2x2 map so BatchNorm can train with batch size 1: ceil(ceil(ceil(s/2)/2)/2) >= 2  <=>  s >= 9.
RESNET_MIN_SIZE = 9


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding (no bias: a BatchNorm follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation,
                     groups=groups, bias=False, dilation=dilation)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution (projection shortcut, bottleneck reduce/expand)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs (He et al. 2016, Fig. 5 left): ``y = relu(F(x) + shortcut(x))``,
    ``F = bn2(conv2(relu(bn1(conv1(x)))))``."""

    expansion: int = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1,
                 norm_layer: Callable[..., nn.Module] | None = None) -> None:
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock only supports groups=1 and base_width=64")
        if dilation > 1:
            raise NotImplementedError("dilation > 1 is not supported in BasicBlock")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride
        self.se: nn.Module | None = None  # filled by senet.add_se
        self.se_channels = planes * self.expansion

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand by ``expansion=4`` (He et al. 2016, Fig. 5
    right; Xie et al. 2017, Fig. 3c). Inner width ``planes * base_width / 64 * groups``; the stride
    is on the 3x3 conv (torchvision's "v1.5")."""

    expansion: int = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1,
                 norm_layer: Callable[..., nn.Module] | None = None) -> None:
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        self.se: nn.Module | None = None  # filled by senet.add_se
        self.se_channels = planes * self.expansion

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(ClassifierMixin, nn.Module):
    """Stem (7x7/2 conv + 3x3/2 max-pool), four stages ``layer1..4`` (64, 128, 256, 512 planes,
    strides 1, 2, 2, 2), global average pool, ``fc`` (He et al. 2016, Table 1).

    ``small_input=True``: 3x3 stride-1 stem and no max-pool (``maxpool`` is ``nn.Identity``), the
    CIFAR-style variant for inputs <= 64 pixels; the state_dict keys are unchanged.
    """

    classifier_name = "fc"

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: list[int], num_classes: int = 1000,
                 in_chans: int = 3, small_input: bool = False, zero_init_residual: bool = False,
                 groups: int = 1, width_per_group: int = 64,
                 replace_stride_with_dilation: list[bool] | None = None,
                 norm_layer: Callable[..., nn.Module] | None = None) -> None:
        super().__init__()
        self._norm_layer = norm_layer or nn.BatchNorm2d
        self.inplanes = 64
        self.dilation = 1
        replace_stride_with_dilation = replace_stride_with_dilation or [False, False, False]
        if len(replace_stride_with_dilation) != 3:
            raise ValueError("replace_stride_with_dilation should be None or a 3-element list")
        self.groups = groups
        self.base_width = width_per_group
        if small_input:
            self.conv1 = nn.Conv2d(in_chans, self.inplanes, kernel_size=3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_chans, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = self._norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2, dilate=replace_stride_with_dilation[0])
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2, dilate=replace_stride_with_dilation[1])
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2, dilate=replace_stride_with_dilation[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_classes = num_classes
        self.num_features = 512 * block.expansion
        self.fc = nn.Linear(self.num_features, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        # Goyal et al. 2017: start each residual branch at zero so every block begins as the identity.
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, BasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)

    def _make_layer(self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int, stride: int = 1,
                    dilate: bool = False) -> nn.Sequential:
        norm_layer = self._norm_layer
        downsample = None
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        if stride != 1 or self.inplanes != planes * block.expansion:
            # projection shortcut (He et al. 2016, Eq. 2, option B)
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       norm_layer(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width,
                        previous_dilation, norm_layer)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, groups=self.groups, base_width=self.base_width,
                                dilation=self.dilation, norm_layer=norm_layer))
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)


def build_resnet(block: type[BasicBlock | Bottleneck], layers: list[int], num_classes: int, in_chans: int,
            img_size: int, **kwargs: Any) -> ResNet:
    return ResNet(block, layers, num_classes=num_classes, in_chans=in_chans,
                  small_input=img_size <= SMALL_INPUT_MAX, **kwargs)



_COMMON: dict[str, Any] = dict(family="ResNet", params_source="torchvision 0.29", params_rtol=0,
                               first_conv="conv1", classifier="fc", min_size=RESNET_MIN_SIZE, default_size=224)


@register_model(paper=_PAPER, torchvision="resnet18", params=11_689_512, **_COMMON)
def resnet18(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs: Any) -> nn.Module:
    """ResNet-18 (Table 1): basic blocks [2, 2, 2, 2]."""
    return build_resnet(BasicBlock, [2, 2, 2, 2], num_classes, in_chans, img_size, **kwargs)


@register_model(paper=_PAPER, torchvision="resnet34", params=21_797_672, **_COMMON)
def resnet34(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs: Any) -> nn.Module:
    """ResNet-34 (Table 1): basic blocks [3, 4, 6, 3]."""
    return build_resnet(BasicBlock, [3, 4, 6, 3], num_classes, in_chans, img_size, **kwargs)


@register_model(paper=_PAPER, torchvision="resnet50", params=25_557_032, **_COMMON)
def resnet50(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs: Any) -> nn.Module:
    """ResNet-50 (Table 1): bottlenecks [3, 4, 6, 3]."""
    return build_resnet(Bottleneck, [3, 4, 6, 3], num_classes, in_chans, img_size, **kwargs)


@register_model(paper=_PAPER, torchvision="resnet101", params=44_549_160, **_COMMON)
def resnet101(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs: Any) -> nn.Module:
    """ResNet-101 (Table 1): bottlenecks [3, 4, 23, 3]."""
    return build_resnet(Bottleneck, [3, 4, 23, 3], num_classes, in_chans, img_size, **kwargs)


@register_model(paper=_PAPER, torchvision="resnet152", params=60_192_808, **_COMMON)
def resnet152(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs: Any) -> nn.Module:
    """ResNet-152 (Table 1): bottlenecks [3, 8, 36, 3]."""
    return build_resnet(Bottleneck, [3, 8, 36, 3], num_classes, in_chans, img_size, **kwargs)


@register_model(paper=_PAPER_RESNEXT, torchvision="resnext50_32x4d", params=25_028_904, **_COMMON)
def resnext50_32x4d(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224,
                    **kwargs: Any) -> nn.Module:
    """ResNeXt-50 (32x4d) (Xie et al. 2017, Table 1): cardinality 32, 4 channels per group."""
    return build_resnet(Bottleneck, [3, 4, 6, 3], num_classes, in_chans, img_size, groups=32, width_per_group=4,
                   **kwargs)


@register_model(paper=_PAPER_RESNEXT, torchvision="resnext101_32x8d", params=88_791_336, **_COMMON)
def resnext101_32x8d(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224,
                     **kwargs: Any) -> nn.Module:
    """ResNeXt-101 (32x8d) (Xie et al. 2017, Table 5): cardinality 32, 8 channels per group."""
    return build_resnet(Bottleneck, [3, 4, 23, 3], num_classes, in_chans, img_size, groups=32, width_per_group=8,
                   **kwargs)


@register_model(paper=_PAPER_WRN, torchvision="wide_resnet50_2", params=68_883_240, **_COMMON)
def wide_resnet50_2(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224,
                    **kwargs: Any) -> nn.Module:
    """Wide ResNet-50-2: ResNet-50 with twice the bottleneck width (outer widths unchanged)."""
    return build_resnet(Bottleneck, [3, 4, 6, 3], num_classes, in_chans, img_size, width_per_group=128, **kwargs)


@register_model(paper=_PAPER_WRN, torchvision="wide_resnet101_2", params=126_886_696, **_COMMON)
def wide_resnet101_2(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224,
                     **kwargs: Any) -> nn.Module:
    """Wide ResNet-101-2: ResNet-101 with twice the bottleneck width (outer widths unchanged)."""
    return build_resnet(Bottleneck, [3, 4, 23, 3], num_classes, in_chans, img_size, width_per_group=128, **kwargs)
