"""ShuffleNets: pointwise group convolutions with channel shuffle (v1) and channel split (v2).

- ShuffleNet-v1: Zhang, Zhou, Lin, Sun, "ShuffleNet: An Extremely Efficient Convolutional Neural Network for
  Mobile Devices", CVPR 2018. ShuffleNet 1x with g = 1, 2, 3, 4, 8 groups (Table 1).
- ShuffleNet-v2: Ma, Zhang, Zheng, Sun, "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture
  Design", ECCV 2018. Units of Fig. 3(c, d), widths of Table 5; torchvision's ``shufflenet_v2_*`` twins.

Small-input variants (``img_size <= 64``) use a stride-1 stem without the max-pool, as
kuangliu/pytorch-cifar's ShuffleNet and ShuffleNetV2 do.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models._base import ClassifierMixin
from cnnlab.models._registry import SMALL_INPUT_MAX, register_model
from cnnlab.models.layers import channel_shuffle

__all__ = [
    "ShuffleNetV1",
    "ShuffleNetV2",
    "shufflenet_v1_g1",
    "shufflenet_v1_g2",
    "shufflenet_v1_g3",
    "shufflenet_v1_g4",
    "shufflenet_v1_g8",
    "shufflenet_v2_x0_5",
    "shufflenet_v2_x1_0",
    "shufflenet_v2_x1_5",
    "shufflenet_v2_x2_0",
]


class ShuffleUnit(nn.Module):
    """ShuffleNet-v1 unit (Fig. 2b, c): 1x1 GConv-BN-ReLU, channel shuffle, 3x3 depthwise conv (stride s)-BN,
    1x1 GConv-BN; stride 1: ``ReLU(x + F(x))``; stride 2: ``ReLU(concat(AvgPool3x3/2(x), F(x)))``, so the
    residual branch produces ``out - in`` channels. The bottleneck has ``out / 4`` channels (§3.3)."""

    def __init__(self, in_channels: int, out_channels: int, groups: int, stride: int,
                 first_groups: int | None = None) -> None:
        super().__init__()
        mid = out_channels // 4
        branch_out = out_channels - in_channels if stride == 2 else out_channels
        first_groups = groups if first_groups is None else first_groups
        self.groups = groups
        self.first_groups = first_groups
        self.stride = stride
        self.gconv1 = nn.Conv2d(in_channels, mid, 1, groups=first_groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.relu = nn.ReLU(inplace=True)
        self.dwconv = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.gconv3 = nn.Conv2d(mid, branch_out, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(branch_out)
        self.shortcut = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.gconv1(x)))
        if self.first_groups > 1:
            out = channel_shuffle(out, self.first_groups)
        out = self.bn2(self.dwconv(out))
        out = self.bn3(self.gconv3(out))
        if self.stride == 2:
            return self.relu(torch.cat((self.shortcut(x), out), 1))
        return self.relu(x + out)


class ShuffleNetV1(ClassifierMixin, nn.Module):
    """ShuffleNet-v1 (Table 1): conv 3x3/2 (24), max-pool 3x3/2, stages 2-4 of 4/8/4 units, global pool, FC.

    The first pointwise layer of Stage 2 is not grouped: its input has only 24 channels (§3.3).
    """

    classifier_name = "fc"

    def __init__(self, stage_channels: tuple[int, int, int], groups: int, num_classes: int = 1000,
                 in_chans: int = 3, small_input: bool = False, stage_repeats: tuple[int, ...] = (4, 8, 4)) -> None:
        super().__init__()
        channels = 24
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_chans, channels, 3, stride=1 if small_input else 2, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, stride=2, padding=1)
        for i, (repeats, out_channels) in enumerate(zip(stage_repeats, stage_channels)):
            units = [ShuffleUnit(channels, out_channels, groups, 2, first_groups=1 if i == 0 else groups)]
            units += [ShuffleUnit(out_channels, out_channels, groups, 1) for _ in range(repeats - 1)]
            setattr(self, f"stage{i + 2}", nn.Sequential(*units))
            channels = out_channels
        self.num_features = channels
        self.num_classes = num_classes
        self.fc = nn.Linear(channels, num_classes)

        # Initialisation of the authors' reference code (megvii-model/ShuffleNet-Series, ShuffleNetV1).
        for name, m in self.named_modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0, 0.01 if name == "conv1.0" else 1.0 / m.weight.shape[1])
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.constant_(m.bias, 1e-4)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        return self.stage4(self.stage3(self.stage2(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean([2, 3])
        return x if pre_logits else self.fc(x)


class ShuffleV2Unit(nn.Module):
    """ShuffleNet-v2 unit. Stride 1 (Fig. 3c): split channels in half, ``concat(x1, branch2(x2))``;
    stride 2 (Fig. 3d): ``concat(branch1(x), branch2(x))``; then channel shuffle with 2 groups.
    branch2 = 1x1 conv-BN-ReLU, 3x3 depthwise conv-BN, 1x1 conv-BN-ReLU; branch1 = 3x3 depthwise conv-BN,
    1x1 conv-BN-ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        branch = out_channels // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                nn.Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False),
                nn.BatchNorm2d(in_channels),
                nn.Conv2d(in_channels, branch, 1, bias=False),
                nn.BatchNorm2d(branch),
                nn.ReLU(inplace=True),
            )
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            nn.Conv2d(in_channels if stride > 1 else branch, branch, 1, bias=False),
            nn.BatchNorm2d(branch),
            nn.ReLU(inplace=True),
            nn.Conv2d(branch, branch, 3, stride, 1, groups=branch, bias=False),
            nn.BatchNorm2d(branch),
            nn.Conv2d(branch, branch, 1, bias=False),
            nn.BatchNorm2d(branch),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), 1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), 1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(ClassifierMixin, nn.Module):
    """ShuffleNet-v2 (Table 5): conv 3x3/2 (24), max-pool, stages 2-4 of 4/8/4 units, conv 1x1, pool, FC."""

    classifier_name = "fc"

    def __init__(self, stage_channels: tuple[int, int, int, int], num_classes: int = 1000, in_chans: int = 3,
                 small_input: bool = False, stage_repeats: tuple[int, ...] = (4, 8, 4)) -> None:
        super().__init__()
        channels = 24
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_chans, channels, 3, stride=1 if small_input else 2, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, stride=2, padding=1)
        for i, (repeats, out_channels) in enumerate(zip(stage_repeats, stage_channels)):
            units = [ShuffleV2Unit(channels, out_channels, 2)]
            units += [ShuffleV2Unit(out_channels, out_channels, 1) for _ in range(repeats - 1)]
            setattr(self, f"stage{i + 2}", nn.Sequential(*units))
            channels = out_channels
        last = stage_channels[-1]
        self.conv5 = nn.Sequential(nn.Conv2d(channels, last, 1, bias=False), nn.BatchNorm2d(last),
                                   nn.ReLU(inplace=True))
        self.num_features = last
        self.num_classes = num_classes
        self.fc = nn.Linear(last, num_classes)  # PyTorch default initialisation, as torchvision

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        return self.conv5(self.stage4(self.stage3(self.stage2(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean([2, 3])
        return x if pre_logits else self.fc(x)


_V1_PAPER = ("Zhang et al., ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile Devices, "
             "CVPR 2018")
_V1 = dict(family="ShuffleNet", paper=_V1_PAPER, min_size=1, first_conv="conv1.0", classifier="fc")
# Stage 2/3/4 output channels of ShuffleNet 1x for each number of groups g (Table 1).
_V1_WIDTHS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960), 4: (272, 544, 1088), 8: (384, 768, 1536)}


def _shufflenet_v1(groups: int, num_classes: int, in_chans: int, img_size: int, **kwargs) -> ShuffleNetV1:
    return ShuffleNetV1(_V1_WIDTHS[groups], groups, num_classes, in_chans,
                        small_input=img_size <= SMALL_INPUT_MAX, **kwargs)


@register_model(params=1_531_936, params_source="exact count (no published per-g count); paper Table 2: 143 MFLOPs",
                **_V1)
def shufflenet_v1_g1(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """ShuffleNet 1x, g=1 (Table 1): stages of 144/288/576 channels."""
    return _shufflenet_v1(1, num_classes, in_chans, img_size, **kwargs)


@register_model(params=1_733_848, params_source="exact count (no published per-g count); paper Table 2: 140 MFLOPs",
                **_V1)
def shufflenet_v1_g2(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """ShuffleNet 1x, g=2 (Table 1): stages of 200/400/800 channels."""
    return _shufflenet_v1(2, num_classes, in_chans, img_size, **kwargs)


@register_model(params=1_865_728, params_source="exact count; 1.87M in mmpretrain, "
                "1.9M in megvii-model/ShuffleNet-Series (authors' code)", **_V1)
def shufflenet_v1_g3(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """ShuffleNet 1x, g=3 (Table 1): stages of 240/480/960 channels."""
    return _shufflenet_v1(3, num_classes, in_chans, img_size, **kwargs)


@register_model(params=1_968_344, params_source="exact count (no published per-g count); paper Table 2: 133 MFLOPs",
                **_V1)
def shufflenet_v1_g4(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """ShuffleNet 1x, g=4 (Table 1): stages of 272/544/1088 channels."""
    return _shufflenet_v1(4, num_classes, in_chans, img_size, **kwargs)


@register_model(params=2_434_768, params_source="exact count; 2.4M in megvii-model/ShuffleNet-Series (authors' code)",
                **_V1)
def shufflenet_v1_g8(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """ShuffleNet 1x, g=8 (Table 1): stages of 384/768/1536 channels."""
    return _shufflenet_v1(8, num_classes, in_chans, img_size, **kwargs)


_V2 = dict(family="ShuffleNet", paper="Ma et al., ShuffleNet V2: Practical Guidelines for Efficient CNN "
           "Architecture Design, ECCV 2018", params_source="torchvision 0.29", min_size=1, first_conv="conv1.0",
           classifier="fc")


def _shufflenet_v2(widths: tuple[int, int, int, int], num_classes: int, in_chans: int, img_size: int,
                   **kwargs) -> ShuffleNetV2:
    return ShuffleNetV2(widths, num_classes, in_chans, small_input=img_size <= SMALL_INPUT_MAX, **kwargs)


@register_model(torchvision="shufflenet_v2_x0_5", params=1_366_792, **_V2)
def shufflenet_v2_x0_5(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """ShuffleNet v2 0.5x (Table 5): stages 48/96/192, conv5 1024."""
    return _shufflenet_v2((48, 96, 192, 1024), num_classes, in_chans, img_size, **kwargs)


@register_model(torchvision="shufflenet_v2_x1_0", params=2_278_604, **_V2)
def shufflenet_v2_x1_0(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """ShuffleNet v2 1x (Table 5): stages 116/232/464, conv5 1024."""
    return _shufflenet_v2((116, 232, 464, 1024), num_classes, in_chans, img_size, **kwargs)


@register_model(torchvision="shufflenet_v2_x1_5", params=3_503_624, **_V2)
def shufflenet_v2_x1_5(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """ShuffleNet v2 1.5x (Table 5): stages 176/352/704, conv5 1024."""
    return _shufflenet_v2((176, 352, 704, 1024), num_classes, in_chans, img_size, **kwargs)


@register_model(torchvision="shufflenet_v2_x2_0", params=7_393_996, **_V2)
def shufflenet_v2_x2_0(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """ShuffleNet v2 2x (Table 5): stages 244/488/976, conv5 2048."""
    return _shufflenet_v2((244, 488, 976, 2048), num_classes, in_chans, img_size, **kwargs)
