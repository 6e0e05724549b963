"""SqueezeNet (Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and
<0.5MB model size", arXiv:1602.07360, 2016).

Fire modules (§3.2, Fig. 1): a 1x1 "squeeze" conv (s1x1 filters) feeding parallel 1x1 and 3x3
"expand" convs (e1x1, e3x3) whose outputs are concatenated, with s1x1 < e1x1 + e3x3
(strategy 2). No FC layer: a 1x1 conv to the classes, ReLU and global average pooling (§3.3,
Table 1). ``squeezenet1_1`` is the v1.1 of the authors' repository (3x3/64 first conv, earlier
pooling: 2.4x less computation, same accuracy). State dicts are torchvision's.

Small inputs (``img_size <= 64``): the first conv becomes 3x3 stride 1 (padding 1) and the
first max-pool an identity; all other indices and keys are kept.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models._base import ClassifierMixin
from cnnlab.models._registry import SMALL_INPUT_MAX, register_model

__all__ = ["Fire", "SqueezeNet", "squeezenet1_0", "squeezenet1_1"]

_PAPER = "Iandola et al., SqueezeNet: AlexNet-level accuracy with 50x fewer parameters, arXiv 2016"


class Fire(nn.Module):
    """Fire module (§3.2): ``cat(relu(e1x1(s)), relu(e3x3(s)))`` with ``s = relu(squeeze1x1(x))``."""

    def __init__(self, inplanes: int, squeeze_planes: int, expand1x1_planes: int, expand3x3_planes: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat(
            [self.expand1x1_activation(self.expand1x1(x)), self.expand3x3_activation(self.expand3x3(x))], 1
        )


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)


class SqueezeNet(ClassifierMixin, nn.Module):
    """conv1 -> fire2..fire9 with max-pools -> dropout, conv10 (1x1 to classes), ReLU, global average."""

    classifier_name = "classifier.1"

    def __init__(self, version: str = "1_0", num_classes: int = 1000, in_chans: int = 3,
                 small: bool = False, dropout: float = 0.5) -> None:
        super().__init__()
        self.num_classes, self.num_features = num_classes, 512
        stem_out, k, s = (96, 7, 2) if version == "1_0" else (64, 3, 2)
        stem = (nn.Conv2d(in_chans, stem_out, kernel_size=3, stride=1, padding=1) if small
                else nn.Conv2d(in_chans, stem_out, kernel_size=k, stride=s))
        first_pool = nn.Identity() if small else _pool()
        if version == "1_0":  # Table 1
            fires = [Fire(96, 16, 64, 64), Fire(128, 16, 64, 64), Fire(128, 32, 128, 128), _pool(),
                     Fire(256, 32, 128, 128), Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
                     Fire(384, 64, 256, 256), _pool(), Fire(512, 64, 256, 256)]
        elif version == "1_1":
            fires = [Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), _pool(),
                     Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), _pool(),
                     Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256),
                     Fire(512, 64, 256, 256)]
        else:
            raise ValueError(f"unknown SqueezeNet version {version!r}")
        self.features = nn.Sequential(stem, nn.ReLU(inplace=True), first_pool, *fires)
        final_conv = nn.Conv2d(512, num_classes, kernel_size=1)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), final_conv, nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d((1, 1))
        )
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    nn.init.normal_(m.weight, mean=0.0, std=0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            return torch.flatten(self.classifier[-1](x), 1)
        return torch.flatten(self.classifier(x), 1)


def _squeezenet(version: str, num_classes: int, in_chans: int, img_size: int, **kwargs) -> SqueezeNet:
    return SqueezeNet(version, num_classes, in_chans, small=img_size <= SMALL_INPUT_MAX, **kwargs)


_COMMON = dict(family="SqueezeNet", paper=_PAPER, params_source="torchvision 0.29", min_size=4,
               first_conv="features.0", classifier="classifier.1")


@register_model(torchvision="squeezenet1_0", params=1_248_424, **_COMMON)
def squeezenet1_0(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """SqueezeNet v1.0 (Table 1): 7x7/2 96-filter conv1, fire2-fire9."""
    return _squeezenet("1_0", num_classes, in_chans, img_size, **kwargs)


@register_model(torchvision="squeezenet1_1", params=1_235_496, **_COMMON)
def squeezenet1_1(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """SqueezeNet v1.1: 3x3/2 64-filter conv1, pooling after conv1, fire3 and fire5."""
    return _squeezenet("1_1", num_classes, in_chans, img_size, **kwargs)
