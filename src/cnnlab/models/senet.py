"""Squeeze-and-Excitation networks (Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018).

An SE block rescales the channels of a feature map ``u`` (Fig. 1, Eqs. 2-4):
``z = mean_{h,w}(u)`` (squeeze), ``s = sigmoid(W2 relu(W1 z))`` with ``W1: C -> C/r``,
``W2: C/r -> C`` (excitation, reduction ``r = 16``, §6.1), ``y = s * u`` (scale). ``W1``/``W2`` are
1x1 convolutions ``fc1``/``fc2`` with bias, as timm's ``SEModule`` (torchvision's
``SqueezeExcitation`` from :mod:`cnnlab.models.layers`).

In a residual network the SE block goes on the residual branch, after its last BN and before the
addition with the shortcut (Fig. 3, SE-ResNet module). :func:`add_se` does exactly that to any
cnnlab ResNet / ResNeXt / CIFAR ResNet / WRN; ``se_resnet50`` and ``se_resnext50_32x4d`` are the
ImageNet ResNet-50 / ResNeXt-50 of :mod:`cnnlab.models.resnet` with SE blocks added (Table 2;
parameter counts as timm's ``seresnet50`` / ``seresnext50_32x4d``, which use the same stem).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.models._registry import register_model
from cnnlab.models.layers import SqueezeExcitation
from cnnlab.models.resnet import RESNET_MIN_SIZE, Bottleneck, build_resnet

__all__ = ["SqueezeExcitation", "add_se"]

_PAPER = "Hu et al., Squeeze-and-Excitation Networks, CVPR 2018"


def add_se(model: nn.Module, reduction: int = 16) -> nn.Module:
    """Insert an SE block (``C -> C/reduction -> C``) into every residual block of ``model``, in place.

    Existing weights are kept; only the new ``se.fc1`` / ``se.fc2`` layers are initialised
    (He normal, zero bias). Returns ``model``. Raises :class:`~cnnlab.errors.ConfigError` for models
    without residual blocks (e.g. VGG, the plain CIFAR nets) or if SE blocks are already present.
    """
    if isinstance(reduction, bool) or not isinstance(reduction, int) or reduction < 1:
        raise ConfigError(f"reduction must be an integer >= 1, got {reduction!r}")
    blocks = [m for m in model.modules() if getattr(m, "se_channels", 0) and hasattr(m, "se")]
    if not blocks:
        raise ConfigError(
            f"add_se: {type(model).__name__} has no residual blocks; SE blocks go on the residual branch "
            "of a ResNet, ResNeXt, CIFAR ResNet or WRN (Hu et al. 2018, Fig. 3)")
    if any(b.se is not None for b in blocks):
        raise ConfigError(f"add_se: {type(model).__name__} already has SE blocks")
    for block in blocks:
        ref = next(block.parameters())
        channels = block.se_channels
        se = SqueezeExcitation(channels, max(1, channels // reduction)).to(device=ref.device, dtype=ref.dtype)
        for conv in (se.fc1, se.fc2):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        block.se = se
    return model


_COMMON: dict[str, Any] = dict(family="SENet", paper=_PAPER, params_source="timm (seresnet50 / seresnext50_32x4d)",
                               params_rtol=0, first_conv="conv1", classifier="fc", min_size=RESNET_MIN_SIZE,
                               default_size=224)


@register_model(params=28_088_024, **_COMMON)
def se_resnet50(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs: Any) -> nn.Module:
    """SE-ResNet-50 (Table 2): ResNet-50 with an SE block (r=16) in every bottleneck."""
    return add_se(build_resnet(Bottleneck, [3, 4, 6, 3], num_classes, in_chans, img_size, **kwargs))


@register_model(params=27_559_896, **_COMMON)
def se_resnext50_32x4d(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224,
                       **kwargs: Any) -> nn.Module:
    """SE-ResNeXt-50 (32x4d) (Table 2): ResNeXt-50 with an SE block (r=16) in every bottleneck."""
    return add_se(build_resnet(Bottleneck, [3, 4, 6, 3], num_classes, in_chans, img_size, groups=32,
                          width_per_group=4, **kwargs))
