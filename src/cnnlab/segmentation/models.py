"""Registry entries of the FCNs (``task="segmentation"``): FCN-32s/16s/8s on VGG-16 (the paper's),
ResNet-18 and FastNet-FCN, and FCN-4s/2s on FastNet-FCN (two more skips, pool2 and pool1: for small items with
thin parts). ``create_model("fcn8s_vgg16", num_classes=K)`` -> logits ``[B, K, H, W]``.

Reference parameter counts at the defaults: the VGG-16 nets are the Caffe reference nets of the FCN
paper (``voc-fcn{32,16,8}s``: fc6 a 7x7x512x4096 conv, full (not grouped) 21-channel deconvolutions
without bias), counted from the layer list -- 134,489,759 for FCN-8s at 21 classes
(134,376,863 trainable: the final 8x upsampling is fixed), the "134M" of the released caffemodel.
The others are cnnlab designs, counted.
"""

from __future__ import annotations

from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.models import register_model
from cnnlab.segmentation.fcn import fcn_fastnet, fcn_resnet18, fcn_vgg16

_PAPER = "Long, Shelhamer & Darrell, Fully Convolutional Networks for Semantic Segmentation, CVPR 2015"
_VGG = dict(family="FCN-VGG16", paper=_PAPER, task="segmentation", num_classes=21, default_size=224,
            min_size=32, first_conv="backbone.features.0", classifier="score_fr",
            params_source="FCN reference Caffe nets voc-fcn*s (layer list, counted)")
_RESNET = dict(family="FCN-ResNet18", paper=_PAPER, task="segmentation", num_classes=21, default_size=224,
               min_size=32, first_conv="backbone.conv1", classifier="score_fr",
               params_source="cnnlab design (counted)")
_FAST = dict(family="FCN-FastNet", paper=_PAPER, task="segmentation", num_classes=11, in_chans=1, default_size=128,
             min_size=32, first_conv="backbone.stem.conv", classifier="score_fr", mean=(0.2860,), std=(0.3530,),
             params_source="cnnlab design (counted)")


def _check(num_classes: int) -> None:
    if num_classes < 1:
        raise ConfigError(f"a segmentation model needs num_classes >= 1 (background included), got {num_classes}")


@register_model(params=136_152_917, **_VGG)
def fcn32s_vgg16(num_classes: int = 21, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """FCN-32s, VGG-16 (§4.1): one 32x bilinear upsampling of the pool5 scores."""
    _check(num_classes)
    return fcn_vgg16(32, num_classes, in_chans, **kwargs)


@register_model(params=134_815_994, **_VGG)
def fcn16s_vgg16(num_classes: int = 21, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """FCN-16s, VGG-16 (§4.2): + the pool4 skip."""
    _check(num_classes)
    return fcn_vgg16(16, num_classes, in_chans, **kwargs)


@register_model(params=134_489_759, **_VGG)
def fcn8s_vgg16(num_classes: int = 21, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """FCN-8s, VGG-16 (§4.2, Fig. 3): + the pool4 and pool3 skips."""
    _check(num_classes)
    return fcn_vgg16(8, num_classes, in_chans, **kwargs)


@register_model(params=12_993_621, **_RESNET)
def fcn32s_resnet18(num_classes: int = 21, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """FCN-32s on ResNet-18 (pool5 = layer4)."""
    _check(num_classes)
    return fcn_resnet18(32, num_classes, in_chans, **kwargs)


@register_model(params=11_651_322, **_RESNET)
def fcn16s_resnet18(num_classes: int = 21, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """FCN-16s on ResNet-18 (pool4 = layer3)."""
    _check(num_classes)
    return fcn_resnet18(16, num_classes, in_chans, **kwargs)


@register_model(params=11_322_399, **_RESNET)
def fcn8s_resnet18(num_classes: int = 21, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """FCN-8s on ResNet-18 (pool3 = layer2)."""
    _check(num_classes)
    return fcn_resnet18(8, num_classes, in_chans, **kwargs)


@register_model(params=1_675_579, **_FAST)
def fcn32s_fastnet(num_classes: int = 11, in_chans: int = 1, img_size: int = 128, **kwargs) -> nn.Module:
    """FCN-32s on the five-stage FastNet (widths 16-32-64-128-256): a CPU-sized FCN for small images."""
    _check(num_classes)
    return fcn_fastnet(32, num_classes, in_chans, **kwargs)


@register_model(params=1_307_222, **_FAST)
def fcn16s_fastnet(num_classes: int = 11, in_chans: int = 1, img_size: int = 128, **kwargs) -> nn.Module:
    """FCN-16s on the five-stage FastNet."""
    _check(num_classes)
    return fcn_fastnet(16, num_classes, in_chans, **kwargs)


@register_model(params=1_216_945, **_FAST)
def fcn8s_fastnet(num_classes: int = 11, in_chans: int = 1, img_size: int = 128, **kwargs) -> nn.Module:
    """FCN-8s on the five-stage FastNet."""
    _check(num_classes)
    return fcn_fastnet(8, num_classes, in_chans, **kwargs)


@register_model(params=1_196_012, **_FAST)
def fcn4s_fastnet(num_classes: int = 11, in_chans: int = 1, img_size: int = 128, **kwargs) -> nn.Module:
    """FCN-4s on the five-stage FastNet: FCN-8s + the pool2 (1/4) skip, one step past the paper."""
    _check(num_classes)
    return fcn_fastnet(4, num_classes, in_chans, **kwargs)


@register_model(params=1_192_327, **_FAST)
def fcn2s_fastnet(num_classes: int = 11, in_chans: int = 1, img_size: int = 128, **kwargs) -> nn.Module:
    """FCN-2s on the five-stage FastNet: FCN-4s + the pool1 (1/2, the stem) skip."""
    _check(num_classes)
    return fcn_fastnet(2, num_classes, in_chans, **kwargs)
