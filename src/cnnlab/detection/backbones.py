"""Feature maps for the detectors from zoo backbones: one map at stride 16 (Faster R-CNN §3: the last shared conv
layer of ZF/VGG-16, stride 16; ResNet's C4 in He et al. 2016 §A).

* FastNet (cnnlab's CPU net) with the whitened stem (airbench's frozen patch-whitening layer, set from training
  images by ``init_from_data``, as the engine does for ``needs_data_init`` models): pool4, 128 channels.
* ResNet-18: ``layer3`` (C4), 256 channels -- the FCN's :class:`~cnnlab.segmentation.fcn.ResNetBackbone` keys,
  so a ResNet-18 classifier's weights load with :func:`~cnnlab.segmentation.fcn.init_from_resnet`'s rule.
* EfficientNet-Lite0: ``features[0:6]`` (stem + stages 1-5, 112 channels), torchvision's layout; ``pretrained=True``
  starts from the ImageNet checkpoint (75.1% top-1; grey inputs: the RGB filters summed, cnnlab's ``load_into``).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models.fastnet import StemDataInit
from cnnlab.segmentation.fcn import FastNetBackbone, ResNetBackbone

BACKBONES = ("fastnet", "resnet18", "efficientnet_lite0")


class FeatureBackbone(nn.Module):
    """``body(x) -> [B, out_channels, H / stride, W / stride]``; ``needs_data_init``/``init_from_data`` pass
    through to a FastNet body's whitened stem."""

    def __init__(self, body: nn.Module, out_channels: int, stride: int, name: str) -> None:
        super().__init__()
        self.body, self.out_channels, self.stride, self.name = body, out_channels, stride, name

    @property
    def needs_data_init(self) -> bool:
        return bool(getattr(self.body, "needs_data_init", False))

    def init_from_data(self, x: torch.Tensor) -> None:
        if hasattr(self.body, "init_from_data"):
            self.body.init_from_data(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class FastNetC4(StemDataInit, nn.Module):
    """FastNet stem + three PoolBlocks (the FCN's FastNet backbone without block4): stride 16."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 96, 128), in_chans: int = 1, stem: str = "whitened"):
        super().__init__()
        net = FastNetBackbone((*widths, widths[-1]), in_chans, stem=stem)
        self.stem, self.block1, self.block2, self.block3 = net.stem, net.block1, net.block2, net.block3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block3(self.block2(self.block1(self.stem(x))))


class ResNetC4(nn.Module):
    """ResNet-18 up to ``layer3`` (stride 16)."""

    def __init__(self, in_chans: int = 3) -> None:
        super().__init__()
        net = ResNetBackbone((2, 2, 2, 2), in_chans)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer3(self.layer2(self.layer1(x)))


def build_backbone(name: str, in_chans: int = 1, **kwargs) -> FeatureBackbone:
    """``fastnet`` (``widths``, ``stem``), ``resnet18`` or ``efficientnet_lite0`` (``pretrained``) -> a stride-16
    feature map."""
    if name == "fastnet":
        widths = tuple(kwargs.get("widths", (32, 64, 96, 128)))
        return FeatureBackbone(FastNetC4(widths, in_chans, kwargs.get("stem", "whitened")), widths[-1], 16, name)
    if name == "resnet18":
        return FeatureBackbone(ResNetC4(in_chans), 256, 16, name)
    if name == "efficientnet_lite0":
        from cnnlab.models import create_model

        weights = "imagenet" if kwargs.get("pretrained") else None  # the TF Lite0 checkpoint (pip package)
        net = create_model("efficientnet_lite0", num_classes=1, in_chans=in_chans, img_size=224, weights=weights)
        return FeatureBackbone(net.features[:6], 112, 16, name)
    raise ValueError(f"unknown detection backbone {name!r}; use one of {', '.join(BACKBONES)}")
