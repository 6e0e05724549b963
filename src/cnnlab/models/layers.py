"""Building blocks shared by the families (one copy of each, not one per family file)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops.misc import Conv2dNormActivation, SqueezeExcitation

__all__ = [
    "BasicConv2d",
    "Conv2dNormActivation",
    "SqueezeExcitation",
    "Conv2dSame",
    "channel_shuffle",
    "imagenet_to_inception_input",
    "init_trunc_normal_",
    "init_weights_",
    "make_divisible",
]


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of ``divisor`` without dropping >10% (MobileNet-v2 reference code)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet channel shuffle (Zhang et al. 2018, §3.1): reshape (g, C/g), transpose, flatten."""
    n, c, h, w = x.shape
    x = x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous()
    return x.view(n, c, h, w)


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding: output = ceil(input / stride), extra pad bottom/right.

    Weights converted from TensorFlow (e.g. EfficientNet-Lite) need this asymmetric padding on
    stride-2 convolutions to reproduce their accuracy.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs["padding"] = 0
        super().__init__(*args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        pads = []
        for size, k, s, d in zip((iw, ih), self.kernel_size[::-1], self.stride[::-1], self.dilation[::-1]):
            out = math.ceil(size / s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = F.pad(x, pads)
        return super().forward(x)


class BasicConv2d(nn.Module):
    """conv (no bias) -> BN (eps 1e-3) -> ReLU: torchvision's GoogLeNet / Inception-v3 unit (keys ``conv``, ``bn``)."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _linear_normal_(m: nn.Linear) -> None:
    nn.init.normal_(m.weight, 0, 0.01)


def init_weights_(module: nn.Module, linear_init: Callable[[nn.Linear], None] = _linear_normal_) -> None:
    """torchvision's initialisation of MobileNet, EfficientNet, MnasNet and VGG, in place.

    Every ``nn.Conv2d``: He normal, fan-out, ReLU gain; bias (if any) zero. Every ``nn.BatchNorm2d``:
    weight 1, bias 0. Every ``nn.Linear``: weight by ``linear_init`` (default N(0, 0.01)), bias 0.
    Modules are visited in ``module.modules()`` order, so the random draws match torchvision's.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            linear_init(m)
            nn.init.zeros_(m.bias)


def init_trunc_normal_(module: nn.Module, std: float, stds: dict[nn.Module, float] | None = None) -> None:
    """torchvision's GoogLeNet / Inception-v3 initialisation, in place.

    Every ``nn.Conv2d`` and ``nn.Linear`` weight: normal truncated to [-2, 2], std ``std`` (or ``stds[m]``
    for the modules listed there); every ``nn.BatchNorm2d``: weight 1, bias 0. Other parameters (the
    Linear biases) keep PyTorch's defaults, as in torchvision.
    """
    stds = stds or {}
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.trunc_normal_(m.weight, mean=0.0, std=stds.get(m, std), a=-2, b=2)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


def imagenet_to_inception_input(x: torch.Tensor) -> torch.Tensor:
    """Map ImageNet-normalised input to the (x - 0.5) / 0.5 scaling of Google's original weights
    (torchvision's ``transform_input`` of GoogLeNet and Inception-v3)."""
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    scale = x.new_tensor([s / 0.5 for s in std]).view(1, 3, 1, 1)
    shift = x.new_tensor([(m - 0.5) / 0.5 for m in mean]).view(1, 3, 1, 1)
    return x * scale + shift
