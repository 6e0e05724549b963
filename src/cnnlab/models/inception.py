"""Inception-v3 (Szegedy, Vanhoucke, Ioffe, Shlens & Wojna, "Rethinking the Inception Architecture
for Computer Vision", CVPR 2016).

Table 1: a 299x299 stem of 3x3 convs, 3 x Fig. 5 modules at 35x35 (5x5 factorised into two 3x3,
§3.1), a grid reduction (Fig. 10, §4), 4 x Fig. 6 modules at 17x17 (n x n factorised into 1xn and
nx1, §3.2), a reduction, 2 x Fig. 7 modules at 8x8 (expanded filter bank), global average pool,
dropout, linear. One auxiliary classifier on the 17x17 grid (§4, Fig. 8) acts as a regulariser.
torchvision's layout and initialisation; 27,161,264 parameters with the auxiliary head.

In training mode (with ``aux_logits``) the forward returns ``AuxOutputs(logits, (aux,))``.

Small inputs (``img_size <= 64``): the stem runs at stride 1 (3x3 convs padded, both stem
max-pools removed), so the 35x35-grid modules see the full 28/32-pixel input and the two grid
reductions take it to 13/15 and then 6/7. Sizes 65-74 fit neither layout (the ImageNet one
needs 75x75) and are rejected with a ``ConfigError``. The auxiliary head average-pools 5x5/3 as in the paper
when its input is at least 17x17 and pools adaptively to the same 5x5 grid otherwise (e.g. on
the 12x12 grid of 224x224 inputs, or on small inputs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.models._base import AuxClassifierMixin
from cnnlab.models._registry import SMALL_INPUT_MAX, register_model
from cnnlab.models.layers import BasicConv2d, imagenet_to_inception_input, init_trunc_normal_

__all__ = ["Inception3", "InceptionA", "InceptionAux", "InceptionB", "InceptionC", "InceptionD", "InceptionE",
           "inception_v3"]

_PAPER = "Szegedy et al., Rethinking the Inception Architecture for Computer Vision, CVPR 2016"


class InceptionA(nn.Module):
    """Fig. 5 (35x35): ``cat(1x1, 1x1->5x5, 1x1->3x3->3x3, avgpool->1x1)``."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    """Fig. 10 grid reduction 35 -> 17: ``cat(3x3/2, 1x1->3x3->3x3/2, maxpool 3x3/2)``."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        b3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([b3, b3dbl, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    """Fig. 6 (17x17, n=7): ``cat(1x1, 1x1->1x7->7x1, 1x1->7x1->1x7->7x1->1x7, avgpool->1x1)``."""

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7dbl = self.branch7x7dbl_1(x)
        for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            b7dbl = conv(b7dbl)
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([b1, b7, b7dbl, bp], 1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8: ``cat(1x1->3x3/2, 1x1->1x7->7x1->3x3/2, maxpool 3x3/2)``."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """Fig. 7 (8x8): 1x1, 1x1->{1x3, 3x1}, 1x1->3x3->{1x3, 3x1}, avgpool->1x1, all concatenated."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        b3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        b3dbl = torch.cat([self.branch3x3dbl_3a(b3dbl), self.branch3x3dbl_3b(b3dbl)], 1)
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([b1, b3, b3dbl, bp], 1)


class InceptionAux(nn.Module):
    """Fig. 8: avgpool 5x5/3 (17 -> 5), 1x1 conv 128, 5x5 conv 768, global pool, linear."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv0 = BasicConv2d(in_channels, 128, kernel_size=1)
        self.conv1 = BasicConv2d(128, 768, kernel_size=5)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) >= 17:
            x = F.avg_pool2d(x, kernel_size=5, stride=3)
        else:  # smaller grids: pool to the 5x5 the 5x5 conv needs
            x = F.adaptive_avg_pool2d(x, (5, 5))
        x = self.conv1(self.conv0(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1))


class Inception3(AuxClassifierMixin, nn.Module):
    """Table 1 (torchvision names): stem, Mixed_5b-5d, 6a, 6b-6e (+AuxLogits), 7a, 7b-7c, pool, fc."""

    classifier_name = "fc"

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = True,
                 transform_input: bool = False, small: bool = False, dropout: float = 0.5) -> None:
        super().__init__()
        self.num_classes, self.num_features = num_classes, 2048
        self.aux_logits, self.transform_input = aux_logits, transform_input
        pad = 1 if small else 0  # small inputs: stride-1 "same" stem
        self.Conv2d_1a_3x3 = BasicConv2d(in_chans, 32, kernel_size=3, stride=1 if small else 2, padding=pad)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3, padding=pad)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.maxpool1 = nn.Identity() if small else nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3, padding=pad)
        self.maxpool2 = nn.Identity() if small else nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.AuxLogits = InceptionAux(768, num_classes) if aux_logits else None
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(2048, num_classes)
        # torchvision's initialisation: truncated normal std 0.1 (0.001 for the auxiliary fc), BN 1 / 0.
        init_trunc_normal_(self, std=0.1, stds={self.AuxLogits.fc: 0.001} if self.AuxLogits is not None else None)

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = imagenet_to_inception_input(x) if self.transform_input else x
        x = self.maxpool1(self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x))))
        x = self.maxpool2(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)))
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))
        x = self.Mixed_6a(x)
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))
        aux = [self.AuxLogits(x)] if self.training and self.AuxLogits is not None else []
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))
        return x, aux

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.dropout(self.avgpool(x)), 1)
        return x if pre_logits else self.fc(x)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace ``fc``; the auxiliary head gets a matching fresh ``fc`` (dropped for 0 classes)."""
        super().reset_classifier(num_classes)
        if num_classes == 0:
            self.aux_logits, self.AuxLogits = False, None
        elif self.AuxLogits is not None:
            self.AuxLogits.fc = nn.Linear(768, num_classes)


@register_model(family="Inception", paper=_PAPER, torchvision="inception_v3", params=27_161_264,
                params_source="torchvision 0.29 (aux_logits=True)", default_size=299, min_size=7,
                first_conv="Conv2d_1a_3x3.conv", classifier="fc", tv_weight_kwargs={"transform_input": True})
def inception_v3(num_classes: int = 1000, in_chans: int = 3, img_size: int = 299, **kwargs) -> nn.Module:
    """Inception-v3 with its auxiliary classifier (torchvision ``inception_v3(weights=None)``)."""
    if SMALL_INPUT_MAX < img_size < 75:
        raise ConfigError(f"img_size={img_size} does not fit inception_v3: its ImageNet layout needs at least "
                          f"75x75 and the small-input layout is used up to {SMALL_INPUT_MAX}x{SMALL_INPUT_MAX}")
    return Inception3(num_classes, in_chans, small=img_size <= SMALL_INPUT_MAX, **kwargs)
