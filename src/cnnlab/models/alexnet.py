"""AlexNet (Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional Neural
Networks", NeurIPS 2012).

``alexnet`` is torchvision's single-tower variant (Krizhevsky, "One weird trick for parallelizing
convolutional neural networks", arXiv:1404.5997, 2014: 64-192-384-256-256 filters, no LRN).

``alexnet_original`` is the 2012 network (§3, Fig. 2): 227x227 input, 96-256-384-384-256 filters,
ReLU, local response normalisation after conv1 and conv2 (§3.3), overlapping 3x3/2 max-pooling
(§3.4; Caffe's ceil rounding: identical at 227, and 65x65 inputs stay valid), the two-GPU split
modelled as ``groups=2`` on conv2, conv4 and conv5 (the layers that only see their own GPU's
maps), dropout 0.5 before fc6 and fc7 (§4.2): 60,965,224 parameters.

Small inputs (``img_size <= 64``, both variants): the first conv becomes 3x3 stride 1 and the first
max-pool is dropped (replaced by an identity so every other index and key is unchanged); the
adaptive 6x6 average pooling before the classifier makes the head independent of the input size.
"""

from __future__ import annotations

from torch import nn

from cnnlab.models._base import PooledMLPMixin
from cnnlab.models._registry import SMALL_INPUT_MAX, register_model

__all__ = ["AlexNet", "alexnet", "alexnet_original"]

_PAPER = "Krizhevsky et al., ImageNet Classification with Deep Convolutional Neural Networks, NeurIPS 2012"


class AlexNet(PooledMLPMixin, nn.Module):
    """``features`` (convolutions) -> 6x6 adaptive average pool -> ``classifier`` (fc6, fc7, fc8)."""

    def __init__(self, features: nn.Sequential, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.num_classes, self.num_features = num_classes, 4096
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )


def _stem(in_chans: int, out: int, small: bool, kernel_size: int, stride: int, padding: int) -> nn.Conv2d:
    if small:
        return nn.Conv2d(in_chans, out, kernel_size=3, stride=1, padding=1)
    return nn.Conv2d(in_chans, out, kernel_size=kernel_size, stride=stride, padding=padding)


def _first_pool(small: bool, ceil_mode: bool = False) -> nn.Module:
    return nn.Identity() if small else nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=ceil_mode)


def _tv_features(in_chans: int, small: bool) -> nn.Sequential:
    return nn.Sequential(
        _stem(in_chans, 64, small, kernel_size=11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        _first_pool(small),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


def local_response_norm() -> nn.LocalResponseNorm:
    """§3.3: ``b = a / (k + alpha * sum_{n neighbours} a^2)^beta`` with k=2, n=5, alpha=1e-4, beta=0.75.

    ``nn.LocalResponseNorm`` divides alpha by n (as Caffe does), so the paper's alpha is passed as
    ``n * alpha = 5e-4``.
    """
    return nn.LocalResponseNorm(size=5, alpha=5 * 1e-4, beta=0.75, k=2.0)


def _original_features(in_chans: int, small: bool) -> nn.Sequential:
    return nn.Sequential(
        _stem(in_chans, 96, small, kernel_size=11, stride=4, padding=0),  # conv1: 227 -> 55
        nn.ReLU(inplace=True),
        local_response_norm(),
        _first_pool(small, ceil_mode=True),  # 55 -> 27
        nn.Conv2d(96, 256, kernel_size=5, padding=2, groups=2),  # conv2: each GPU sees its 48 maps
        nn.ReLU(inplace=True),
        local_response_norm(),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),  # 27 -> 13
        nn.Conv2d(256, 384, kernel_size=3, padding=1),  # conv3: connected across GPUs
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 384, kernel_size=3, padding=1, groups=2),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1, groups=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),  # 13 -> 6
    )


def _init_original(model: AlexNet) -> None:
    """§5: weights N(0, 0.01); biases 1 in conv2, conv4, conv5 and the hidden FC layers, else 0."""
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    fcs = [m for m in model.classifier if isinstance(m, nn.Linear)]
    for m in convs + fcs:
        nn.init.normal_(m.weight, mean=0.0, std=0.01)
        nn.init.zeros_(m.bias)
    for m in (convs[1], convs[3], convs[4], fcs[0], fcs[1]):
        nn.init.ones_(m.bias)


@register_model(family="AlexNet", paper=_PAPER, torchvision="alexnet", params=61_100_840,
                params_source="torchvision 0.29", min_size=7, first_conv="features.0",
                classifier="classifier.6")
def alexnet(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs) -> nn.Module:
    """torchvision's AlexNet (one-weird-trick single-GPU layout)."""
    return AlexNet(_tv_features(in_chans, img_size <= SMALL_INPUT_MAX), num_classes, **kwargs)


@register_model(family="AlexNet", paper=_PAPER, params=60_965_224,
                params_source="paper §3 architecture (computed; groups=2 for the GPU split)",
                default_size=227, min_size=7, first_conv="features.0", classifier="classifier.6")
def alexnet_original(num_classes: int = 1000, in_chans: int = 3, img_size: int = 227, **kwargs) -> nn.Module:
    """The 2012 AlexNet: LRN, overlapping pooling, two-GPU grouping."""
    model = AlexNet(_original_features(in_chans, img_size <= SMALL_INPUT_MAX), num_classes, **kwargs)
    _init_original(model)
    return model
