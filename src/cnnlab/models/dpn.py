"""Dual Path Networks (Chen et al., "Dual Path Networks", NIPS 2017).

A DPN block shares one bottleneck ``1x1 -> grouped 3x3 -> 1x1`` between two paths (§4, Eq. 5-8,
Fig. 2e): the first ``bw`` output channels are *added* to the residual path (ResNet-style feature
re-use), the remaining ``inc`` are *concatenated* to the densely connected path (DenseNet-style
exploration, ``inc`` new channels per block). The first block of each stage projects the input to
``bw + 2*inc`` channels to start both paths. Layers are pre-activation BN-ReLU-Conv as in the
official MXNet code (cypw/DPNs), BN with eps 1e-3. Widths and depths follow Table 1; names follow
timm's ``dpn.py`` (``features.conv2_1.c1x1_a.bn``...), whose parameter counts we match exactly
(dpn68 12,611,602; dpn92 37,668,392).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from cnnlab.models._base import ClassifierMixin
from cnnlab.models._registry import SMALL_INPUT_MAX, register_model

__all__ = ["DPN", "DualPathBlock"]

_PAPER = "Chen et al., Dual Path Networks, NIPS 2017"
# Small-input stem: stride 8 overall; the last stage needs a 2x2 map so BatchNorm trains at batch 1.
_MIN_SIZE = 9
# Mean/std of the converted MXNet weights (timm IMAGENET_DPN_MEAN / STD: 124/255, 117/255, 104/255; 0.0167*255).
DPN_MEAN = (124 / 255, 117 / 255, 104 / 255)
DPN_STD = (0.2489,) * 3


class BnActConv2d(nn.Module):
    """Pre-activation unit ``conv(relu(bn(x)))`` (He et al. 2016b ordering, used throughout DPN)."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_chs, eps=1e-3)
        self.act = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding=kernel_size // 2, groups=groups,
                              bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.act(self.bn(x)))


class DualPathBlock(nn.Module):
    """One DPN block (Fig. 2e). With ``x = [r, d]`` (residual path ``r``, ``bw`` channels; dense
    path ``d``), ``h = c1x1_c(c3x3_b(c1x1_a([r, d])))`` and the outputs are
    ``r' = r + h[:bw]`` and ``d' = [d, h[bw:]]`` (Eqs. 5-8). ``kind``: ``"proj"`` / ``"down"``
    (stride 2) first blocks project ``[r, d]`` to ``bw + 2*inc`` channels with ``c1x1_w``."""

    def __init__(self, in_chs: int, num_1x1_a: int, num_3x3_b: int, bw: int, inc: int, groups: int,
                 kind: str = "normal") -> None:
        super().__init__()
        self.bw = bw
        stride = 2 if kind == "down" else 1
        self.c1x1_w: nn.Module | None = None
        if kind in ("proj", "down"):
            self.c1x1_w = BnActConv2d(in_chs, bw + 2 * inc, 1, stride)
        self.c1x1_a = BnActConv2d(in_chs, num_1x1_a, 1)
        self.c3x3_b = BnActConv2d(num_1x1_a, num_3x3_b, 3, stride, groups=groups)
        self.c1x1_c = BnActConv2d(num_3x3_b, bw + inc, 1)

    def forward(self, x: tuple[torch.Tensor, torch.Tensor] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x_in = torch.cat(x, dim=1) if isinstance(x, tuple) else x
        if self.c1x1_w is None:
            resid, dense = x
        else:
            proj = self.c1x1_w(x_in)
            resid, dense = proj[:, : self.bw], proj[:, self.bw:]
        h = self.c1x1_c(self.c3x3_b(self.c1x1_a(x_in)))
        return resid + h[:, : self.bw], torch.cat([dense, h[:, self.bw:]], dim=1)


class DPN(ClassifierMixin, nn.Module):
    """Stem conv-BN-ReLU (``conv1_1``) + 3x3/2 max-pool, stages ``conv2..conv5`` of dual path blocks
    (strides 1, 2, 2, 2), final BN-ReLU on ``[r, d]`` (``conv5_bn_ac``), global average pool, and a
    1x1-conv ``classifier`` (as the official code). timm uses ELU in ``conv5_bn_ac``; ReLU here,
    as in every other pre-activation unit (no parameters either way).

    Stage ``i`` (64, 128, 256, 512 base widths) has ``bw = base * bw_factor`` residual channels,
    bottleneck width ``r = k_r * bw / (64 * bw_factor)`` and dense increment ``inc_sec[i]``.
    ``small_input=True``: 3x3 stride-1 stem and no max-pool (``conv1_pool`` is ``nn.Identity``).
    """

    classifier_name = "classifier"

    def __init__(self, k_sec: tuple[int, ...], inc_sec: tuple[int, ...], k_r: int, groups: int,
                 num_init_features: int = 64, small: bool = False, num_classes: int = 1000, in_chans: int = 3,
                 small_input: bool = False, drop_rate: float = 0.0) -> None:
        super().__init__()
        bw_factor = 1 if small else 4
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        kernel, stride = (3, 1) if small_input else ((3, 2) if small else (7, 2))
        blocks["conv1_1"] = nn.Sequential(OrderedDict(
            conv=nn.Conv2d(in_chans, num_init_features, kernel, stride, padding=kernel // 2, bias=False),
            bn=nn.BatchNorm2d(num_init_features, eps=1e-3),
            act=nn.ReLU(inplace=True)))
        blocks["conv1_pool"] = nn.Identity() if small_input else nn.MaxPool2d(3, stride=2, padding=1)
        in_chs = num_init_features
        for stage, (base, depth, inc) in enumerate(zip((64, 128, 256, 512), k_sec, inc_sec), start=2):
            bw = base * bw_factor
            r = (k_r * bw) // (64 * bw_factor)
            for i in range(1, depth + 1):
                kind = "normal" if i > 1 else ("proj" if stage == 2 else "down")
                blocks[f"conv{stage}_{i}"] = DualPathBlock(in_chs, r, r, bw, inc, groups, kind)
                in_chs = bw + 3 * inc if i == 1 else in_chs + inc
        blocks["conv5_bn_ac"] = nn.Sequential(OrderedDict(bn=nn.BatchNorm2d(in_chs, eps=1e-3),
                                                          act=nn.ReLU(inplace=True)))
        self.features = nn.Sequential(blocks)
        self.num_classes = num_classes
        self.num_features = in_chs
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(drop_rate)
        self.classifier = nn.Conv2d(in_chs, num_classes, kernel_size=1, bias=True)
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is not self.classifier:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        stem, pool, *stages, final = self.features
        x = pool(stem(x))
        for block in stages:
            x = block(x)
        return final(torch.cat(x, dim=1))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(self.global_pool(x))
        if pre_logits:
            return torch.flatten(x, 1)
        return torch.flatten(self.classifier(x), 1)


def _dpn(num_classes: int, in_chans: int, img_size: int, **kwargs: Any) -> DPN:
    return DPN(num_classes=num_classes, in_chans=in_chans, small_input=img_size <= SMALL_INPUT_MAX, **kwargs)


_COMMON: dict[str, Any] = dict(family="DPN", paper=_PAPER, params_rtol=0, first_conv="features.conv1_1.conv",
                               classifier="classifier", min_size=_MIN_SIZE, default_size=224, mean=DPN_MEAN,
                               std=DPN_STD)


@register_model(params=12_611_602, params_source="timm dpn68 (MXNet cypw/DPNs): 12.6M", **_COMMON)
def dpn68(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs: Any) -> nn.Module:
    """DPN-68: 3x3 stem with 10 filters, k_r=128, G=32, blocks (3, 4, 12, 3), inc (16, 32, 32, 64)."""
    return _dpn(num_classes, in_chans, img_size, small=True, num_init_features=10, k_r=128, groups=32,
                k_sec=(3, 4, 12, 3), inc_sec=(16, 32, 32, 64), **kwargs)


@register_model(params=37_668_392, params_source="timm dpn92 (MXNet cypw/DPNs); paper Table 2: 37.7M", **_COMMON)
def dpn92(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs: Any) -> nn.Module:
    """DPN-92 (Table 1): 7x7 stem with 64 filters, k_r=96, G=32, blocks (3, 4, 20, 3), inc (16, 32, 24, 128)."""
    return _dpn(num_classes, in_chans, img_size, num_init_features=64, k_r=96, groups=32,
                k_sec=(3, 4, 20, 3), inc_sec=(16, 32, 24, 128), **kwargs)
