"""MnasNet (Tan, Chen, Pang, Vasudevan, Sandler, Howard, Le, "MnasNet: Platform-Aware Neural Architecture
Search for Mobile", CVPR 2019).

MnasNet-B1 -- the searched model without squeeze-and-excitation, ``mnasnet_b1`` of the authors'
TensorFlow reference (tensorflow/tpu, models/official/mnasnet) -- as torchvision builds it: a 3x3 conv,
a depthwise-separable conv, six stacks of MBConv inverted residuals (expansion 3 or 6, 3x3 or 5x5
depthwise kernels), a 1x1 conv to 1280 and a linear classifier.
The depth multiplier α scales every width with torchvision's ``_get_depths`` rounding (round to a
multiple of 8, rounding up unless that is within 10% below). torchvision's ``mnasnet*`` twins
(state_dict ``_version = 2``: the stem is scaled with α too).

Small-input variant (``img_size <= 64``): stride-1 stem and the first stride-2 stack kept at stride 1,
as kuangliu/pytorch-cifar does for MobileNetV2.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models._base import ClassifierMixin
from cnnlab.models._registry import SMALL_INPUT_MAX, register_model
from cnnlab.models.layers import init_weights_

__all__ = ["MNASNet", "mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3"]

# TensorFlow's batch-norm decay 0.9997 as a PyTorch momentum.
_BN_MOMENTUM = 1 - 0.9997


class MBConv(nn.Module):
    """MBConv block (Fig. 7 legend; the inverted residual of MobileNetV2): 1x1 expansion conv-BN-ReLU
    (t·c channels), kxk depthwise conv (stride s)-BN-ReLU, linear 1x1 projection conv-BN; residual
    ``x + F(x)`` when stride is 1 and the widths match."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, expansion: int,
                 bn_momentum: float = 0.1) -> None:
        super().__init__()
        mid = in_channels * expansion
        self.apply_residual = in_channels == out_channels and stride == 1
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, mid, 1, bias=False),
            nn.BatchNorm2d(mid, momentum=bn_momentum),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, kernel_size, stride=stride, padding=kernel_size // 2, groups=mid, bias=False),
            nn.BatchNorm2d(mid, momentum=bn_momentum),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels, momentum=bn_momentum),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x) if self.apply_residual else self.layers(x)


def _stack(in_channels: int, out_channels: int, kernel_size: int, stride: int, expansion: int,
           repeats: int) -> nn.Sequential:
    """``repeats`` MBConv blocks; only the first changes width and resolution."""
    blocks = [MBConv(in_channels, out_channels, kernel_size, stride, expansion, _BN_MOMENTUM)]
    blocks += [MBConv(out_channels, out_channels, kernel_size, 1, expansion, _BN_MOMENTUM)
               for _ in range(repeats - 1)]
    return nn.Sequential(*blocks)


def _round_to_multiple_of(value: float, divisor: int = 8, round_up_bias: float = 0.9) -> int:
    """Round to a multiple of ``divisor``, rounding up unless the result stays within 10% below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded if rounded >= round_up_bias * value else rounded + divisor


def _get_depths(alpha: float) -> list[int]:
    """Widths of the stem, the separable conv and the six stacks, scaled by the depth multiplier α."""
    return [_round_to_multiple_of(d * alpha) for d in (32, 16, 24, 40, 80, 96, 192, 320)]


# MnasNet-B1's MBConv stacks: kernel, first stride, expansion, repeats; widths from _get_depths()[2:].
_STACKS = [(3, 2, 3, 3), (5, 2, 3, 3), (5, 2, 6, 3), (3, 1, 6, 2), (5, 2, 6, 4), (3, 1, 6, 1)]


def _linear_kaiming_uniform_(m: nn.Linear) -> None:
    """torchvision's MnasNet classifier init: He uniform, fan-out, sigmoid gain."""
    nn.init.kaiming_uniform_(m.weight, mode="fan_out", nonlinearity="sigmoid")


class MNASNet(ClassifierMixin, nn.Module):
    """MnasNet-B1 with depth multiplier α; ``layers`` and ``classifier`` keep torchvision's indices."""

    classifier_name = "classifier.1"
    _version = 2  # torchvision's state_dict layout version (α-scaled stem); v1 checkpoints are not converted

    def __init__(self, alpha: float, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.2,
                 small_input: bool = False) -> None:
        super().__init__()
        if alpha <= 0.0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        self.alpha = alpha
        depths = _get_depths(alpha)
        stem_stride = 1 if small_input else 2
        layers: list[nn.Module] = [
            # stem: 3x3 conv
            nn.Conv2d(in_chans, depths[0], 3, padding=1, stride=stem_stride, bias=False),
            nn.BatchNorm2d(depths[0], momentum=_BN_MOMENTUM),
            nn.ReLU(inplace=True),
            # depthwise-separable conv, no skip
            nn.Conv2d(depths[0], depths[0], 3, padding=1, groups=depths[0], bias=False),
            nn.BatchNorm2d(depths[0], momentum=_BN_MOMENTUM),
            nn.ReLU(inplace=True),
            nn.Conv2d(depths[0], depths[1], 1, bias=False),
            nn.BatchNorm2d(depths[1], momentum=_BN_MOMENTUM),
        ]
        for i, (kernel, stride, expansion, repeats) in enumerate(_STACKS):
            if small_input and i == 0:
                stride = 1
            layers.append(_stack(depths[i + 1], depths[i + 2], kernel, stride, expansion, repeats))
        layers += [
            nn.Conv2d(depths[7], 1280, 1, bias=False),
            nn.BatchNorm2d(1280, momentum=_BN_MOMENTUM),
            nn.ReLU(inplace=True),
        ]
        self.layers = nn.Sequential(*layers)
        self.num_features = 1280
        self.num_classes = num_classes
        self.classifier = nn.Sequential(nn.Dropout(p=dropout, inplace=True), nn.Linear(1280, num_classes))

        init_weights_(self, linear_init=_linear_kaiming_uniform_)  # torchvision's initialisation

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean([2, 3])
        return x if pre_logits else self.classifier(x)


_INFO = dict(family="MnasNet", paper="Tan et al., MnasNet: Platform-Aware Neural Architecture Search for Mobile, "
             "CVPR 2019", params_source="torchvision 0.29", min_size=1, first_conv="layers.0",
             classifier="classifier.1")


def _mnasnet(alpha: float, num_classes: int, in_chans: int, img_size: int, **kwargs) -> MNASNet:
    return MNASNet(alpha, num_classes, in_chans, small_input=img_size <= SMALL_INPUT_MAX, **kwargs)


@register_model(torchvision="mnasnet0_5", params=2_218_512, **_INFO)
def mnasnet0_5(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """MnasNet-B1 with depth multiplier 0.5."""
    return _mnasnet(0.5, num_classes, in_chans, img_size, **kwargs)


@register_model(torchvision="mnasnet0_75", params=3_170_208, **_INFO)
def mnasnet0_75(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """MnasNet-B1 with depth multiplier 0.75."""
    return _mnasnet(0.75, num_classes, in_chans, img_size, **kwargs)


@register_model(torchvision="mnasnet1_0", params=4_383_312, **_INFO)
def mnasnet1_0(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """MnasNet-B1 with depth multiplier 1.0."""
    return _mnasnet(1.0, num_classes, in_chans, img_size, **kwargs)


@register_model(torchvision="mnasnet1_3", params=6_282_256, **_INFO)
def mnasnet1_3(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """MnasNet-B1 with depth multiplier 1.3."""
    return _mnasnet(1.3, num_classes, in_chans, img_size, **kwargs)
