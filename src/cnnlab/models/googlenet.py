"""GoogLeNet / Inception-v1 (Szegedy et al., "Going Deeper with Convolutions", CVPR 2015).

Inception modules (§4, Fig. 2b): parallel 1x1, 1x1->3x3, 1x1->"5x5" and 3x3 max-pool->1x1
branches, concatenated; widths from Table 1. Two auxiliary classifiers on inception 4a and 4d
(§5) add 0.3x their loss during training. torchvision's layout (BN after every conv, 1024-unit
auxiliary FC), including its known quirk: the "5x5" branch uses a 3x3 kernel, as in the
weights torchvision ships. State dicts (with the auxiliary heads) are torchvision's; 13,004,888
parameters with auxiliaries, 6,624,904 without.

In training mode (with ``aux_logits``) the forward returns ``AuxOutputs(logits, (aux1, aux2))``;
in eval mode the logits.

Small inputs (``img_size <= 64``): conv1 becomes 3x3 stride 1 and the first two max-pools are
identities, so inception 3 runs at the input resolution as in kuangliu/pytorch-cifar's GoogLeNet.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models._base import AuxClassifierMixin
from cnnlab.models._registry import SMALL_INPUT_MAX, register_model
from cnnlab.models.layers import BasicConv2d, imagenet_to_inception_input, init_trunc_normal_

__all__ = ["BasicConv2d", "GoogLeNet", "Inception", "InceptionAux", "googlenet"]

_PAPER = "Szegedy et al., Going Deeper with Convolutions, CVPR 2015"


class Inception(nn.Module):
    """Fig. 2b: ``cat(1x1, 1x1->3x3, 1x1->3x3 (the "5x5" branch), maxpool 3x3/1->1x1)``."""

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int,
                 pool_proj: int) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, kernel_size=1),
                                     BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, kernel_size=1),
                                     BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1))  # torchvision: 3x3
        self.branch4 = nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(in_channels, pool_proj, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """§5: average pool to 4x4 (the paper's 5x5/3 on 14x14), 1x1 conv 128, FC 1024, dropout 0.7, FC."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.conv(F.adaptive_avg_pool2d(x, (4, 4))), 1)
        x = self.dropout(F.relu(self.fc1(x), inplace=True))
        return self.fc2(x)


class GoogLeNet(AuxClassifierMixin, nn.Module):
    """Table 1: stem, inception 3a-3b, 4a-4e, 5a-5b, global average pool, dropout 0.4 (0.2 here as in
    torchvision), linear classifier."""

    classifier_name = "fc"

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = True,
                 transform_input: bool = False, small: bool = False, dropout: float = 0.2,
                 dropout_aux: float = 0.7) -> None:
        super().__init__()
        self.num_classes, self.num_features = num_classes, 1024
        self.aux_logits, self.transform_input = aux_logits, transform_input
        if small:
            self.conv1 = BasicConv2d(in_chans, 64, kernel_size=3, stride=1, padding=1)
        else:
            self.conv1 = BasicConv2d(in_chans, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.Identity() if small else nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.Identity() if small else nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)

        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)

        self.aux1 = InceptionAux(512, num_classes, dropout=dropout_aux) if aux_logits else None
        self.aux2 = InceptionAux(528, num_classes, dropout=dropout_aux) if aux_logits else None

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)

        init_trunc_normal_(self, std=0.01)  # torchvision's initialisation (init_weights=True)

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Features plus the auxiliary logits (computed in training mode only)."""
        use_aux = self.training and self.aux1 is not None and self.aux2 is not None
        aux: list[torch.Tensor] = []
        x = imagenet_to_inception_input(x) if self.transform_input else x
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        if use_aux:
            aux.append(self.aux1(x))
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        if use_aux:
            aux.append(self.aux2(x))
        x = self.maxpool4(self.inception4e(x))
        return self.inception5b(self.inception5a(x)), aux

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(torch.flatten(self.avgpool(x), 1))
        return x if pre_logits else self.fc(x)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace ``fc``; the auxiliary heads get matching fresh ``fc2`` (dropped for 0 classes)."""
        super().reset_classifier(num_classes)
        if num_classes == 0:
            self.aux_logits, self.aux1, self.aux2 = False, None, None
        elif self.aux1 is not None and self.aux2 is not None:
            self.aux1.fc2 = nn.Linear(1024, num_classes)
            self.aux2.fc2 = nn.Linear(1024, num_classes)


@register_model(family="GoogLeNet", paper=_PAPER, torchvision="googlenet", params=13_004_888,
                params_source="torchvision 0.29 (aux_logits=True)", min_size=4, first_conv="conv1.conv",
                classifier="fc", tv_weight_kwargs={"transform_input": True})
def googlenet(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """GoogLeNet with both auxiliary classifiers (torchvision ``googlenet(weights=None)``)."""
    return GoogLeNet(num_classes, in_chans, small=img_size <= SMALL_INPUT_MAX, **kwargs)
