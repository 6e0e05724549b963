"""MobileNets: depthwise-separable (v1) and inverted-residual (v2) networks.

- MobileNet-v1: Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
  Applications", arXiv 2017. A 3x3 conv followed by 13 depthwise-separable convolutions (Table 1,
  Fig. 3); width multiplier α thins every layer (§3.3), the resolution multiplier ρ is the input size.
- MobileNet-v2: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018.
  Inverted residual blocks with linear bottlenecks and ReLU6 (Table 1, Table 2); torchvision's
  ``mobilenet_v2`` twin (same state_dict keys).

Small-input variants (``img_size <= 64``) use a stride-1 stem, as kuangliu/pytorch-cifar's MobileNet
and MobileNetV2 do; v2 also keeps its first stride-2 stage (24 channels) at stride 1.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models._base import ClassifierMixin
from cnnlab.models._registry import SMALL_INPUT_MAX, register_model
from cnnlab.models.layers import Conv2dNormActivation, init_weights_, make_divisible

__all__ = ["MobileNetV1", "MobileNetV2", "mobilenet_v1", "mobilenet_v2"]


class DepthwiseSeparableConv(nn.Module):
    """MobileNet-v1 block (Fig. 3 right): 3x3 depthwise conv-BN-ReLU, then 1x1 pointwise conv-BN-ReLU.

    Cost D_K·D_K·M·D_F·D_F + M·N·D_F·D_F mult-adds instead of D_K·D_K·M·N·D_F·D_F (§3.1, Eq. 5).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.dw = Conv2dNormActivation(in_channels, in_channels, kernel_size=3, stride=stride, groups=in_channels)
        self.pw = Conv2dNormActivation(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


# (output channels, stride) of the 13 depthwise-separable layers of Table 1.
_V1_LAYERS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]


class MobileNetV1(ClassifierMixin, nn.Module):
    """MobileNet-v1 (Table 1): conv 3x3/2 (32), 13 depthwise-separable layers, global avg pool, FC.

    Width multiplier α: every layer has ``max(8, int(α·c))`` channels (§3.3; TF-slim's rounding).
    """

    classifier_name = "fc"

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0,
                 small_input: bool = False, dropout: float = 0.0) -> None:
        super().__init__()

        def width(c: int) -> int:
            return max(8, int(c * width_mult))

        channels = width(32)
        layers: list[nn.Module] = [Conv2dNormActivation(in_chans, channels, kernel_size=3,
                                                        stride=1 if small_input else 2)]
        for c, stride in _V1_LAYERS:
            layers.append(DepthwiseSeparableConv(channels, width(c), stride))
            channels = width(c)
        self.features = nn.Sequential(*layers)
        self.num_features = channels
        self.num_classes = num_classes
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)

        init_weights_(self)  # torchvision's MobileNet initialisation

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return x if pre_logits else self.fc(self.dropout(x))


class InvertedResidual(nn.Module):
    """MobileNet-v2 bottleneck (Table 1, Fig. 3b): 1x1 expansion conv-BN-ReLU6 (t·c channels; absent when
    t = 1), 3x3 depthwise conv-BN-ReLU6, linear 1x1 projection conv-BN (no activation, §3.2);
    residual ``x + F(x)`` when stride is 1 and the widths match (§3.3)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = int(round(in_channels * expand_ratio))
        self.use_res_connect = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(in_channels, hidden, kernel_size=1, activation_layer=nn.ReLU6))
        layers += [
            Conv2dNormActivation(hidden, hidden, stride=stride, groups=hidden, activation_layer=nn.ReLU6),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


# Table 2: expansion t, output channels c, repeats n, first stride s.
_V2_SETTING = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
               (6, 320, 1, 1)]


class MobileNetV2(ClassifierMixin, nn.Module):
    """MobileNet-v2 (Table 2): conv 3x3/2 (32), 17 inverted residuals, conv 1x1 (1280), pool, dropout, FC.

    Widths are ``c·α`` rounded to a multiple of 8 (``make_divisible``); the last conv keeps 1280 for α < 1.
    """

    classifier_name = "classifier.1"

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0,
                 small_input: bool = False, dropout: float = 0.2) -> None:
        super().__init__()
        channels = make_divisible(32 * width_mult, 8)
        last_channels = make_divisible(1280 * max(1.0, width_mult), 8)
        layers: list[nn.Module] = [Conv2dNormActivation(in_chans, channels, stride=1 if small_input else 2,
                                                        activation_layer=nn.ReLU6)]
        for i, (t, c, n, s) in enumerate(_V2_SETTING):
            if small_input and i == 1:
                s = 1  # kuangliu/pytorch-cifar: "change stride 2 -> 1 for CIFAR10"
            out_channels = make_divisible(c * width_mult, 8)
            for j in range(n):
                layers.append(InvertedResidual(channels, out_channels, s if j == 0 else 1, t))
                channels = out_channels
        layers.append(Conv2dNormActivation(channels, last_channels, kernel_size=1, activation_layer=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.num_features = last_channels
        self.num_classes = num_classes
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(last_channels, num_classes))

        init_weights_(self)  # torchvision's initialisation

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return x if pre_logits else self.classifier(x)


@register_model(family="MobileNet", paper="Howard et al., MobileNets: Efficient Convolutional Neural Networks "
                "for Mobile Vision Applications, arXiv 2017", params=4_231_976,
                params_source="paper Table 6: 4.2M; exact: osmr/imgclsmob mobilenet_w1, "
                "Keras MobileNet trainable params",
                min_size=1, first_conv="features.0.0", classifier="fc")
def mobilenet_v1(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """1.0 MobileNet-224 (Table 1); ``width_mult`` is α (Table 6: 0.75, 0.5, 0.25), ``img_size`` is ρ·224."""
    return MobileNetV1(num_classes, in_chans, small_input=img_size <= SMALL_INPUT_MAX, **kwargs)


@register_model(family="MobileNet", paper="Sandler et al., MobileNetV2: Inverted Residuals and Linear "
                "Bottlenecks, CVPR 2018", torchvision="mobilenet_v2", params=3_504_872,
                params_source="torchvision 0.29", min_size=1, first_conv="features.0.0", classifier="classifier.1")
def mobilenet_v2(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """MobileNetV2 1.0 (Table 2, 3.4M params in Table 4); ``width_mult`` scales the widths."""
    return MobileNetV2(num_classes, in_chans, small_input=img_size <= SMALL_INPUT_MAX, **kwargs)
