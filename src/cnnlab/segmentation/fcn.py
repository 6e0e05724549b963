"""Fully convolutional networks (Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic
Segmentation", CVPR 2015).

A classification net turned into a dense predictor (§3.1, §4.1): the FC layers become convolutions,
a 1x1 *score* layer predicts ``K`` class scores at every position of the coarsest (1/32) map, and
in-network transposed convolutions initialised to bilinear interpolation (§3.3) upsample them to
the input size. The skip architecture (§4.2, Fig. 3) fuses finer, shallower layers:

    FCN-32s   upscore32( score_fr(pool5) )
    FCN-16s   upscore16( upscore2(score_fr(pool5)) + score_pool4(pool4) )
    FCN-8s    upscore8(  upscore2( upscore2(score_fr(pool5)) + score_pool4(pool4) ) + score_pool3(pool3) )

As in the paper: the score layers start at zero (§4.3; so a new skip starts as the coarser net),
the 2x upsamplings are learned from a bilinear start, the final upsampling is fixed bilinear.
The paper stops at FCN-8s ("diminishing returns", §4.2: +0.3 mean IU on VOC). cnnlab continues the same
rule one and two steps further for small objects with thin parts, whose masks a 1/8 map cannot draw:
FCN-4s adds ``score_pool2(pool2)`` after a third learned 2x upsampling, FCN-2s also ``score_pool1(pool1)``.

Geometry. The paper pads conv1_1 by 100 pixels and crops every fused map by a computed offset
(Caffe's ``Crop`` layer). cnnlab uses the crop-free equivalent used by modern ports: 3x3 convs with
padding 1, ``ceil_mode`` pooling (so pool_k has ``ceil(H / 2^k)`` rows), fc6 a 7x7 conv with padding
3, and upsamplers ``ConvTranspose2d(k=2f, stride=f, padding=f/2)``, which map output pixel ``o`` to
input position ``(o + 1/2)/f - 1/2`` (bilinear interpolation with ``align_corners=False``). With
3x3/pad-1 convs and 2x2 pools, unit ``i`` of pool_k is centred at input pixel ``2^k i + (2^k - 1)/2``,
so the upsampled coarse map is aligned with the finer one exactly, with zero crop offset: the
surplus row/column that ceil rounding can leave is cut at the bottom/right.

Backbones: VGG-16 (the paper's; torchvision's ``vgg16`` state-dict layout under ``backbone.features``,
fc6/fc7 as convolutions, :func:`init_from_vgg` loads a convolutionalized classifier), ResNet-18
(pool3/4/5 = layer2/3/4; :func:`init_from_resnet`) and FastNet-FCN, a five-stage FastNet (cnnlab's CPU net)
for small inputs.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models.fastnet import PoolBlock, StemDataInit, make_stem
from cnnlab.models.layers import init_weights_
from cnnlab.models.resnet import BasicBlock, ResNet
from cnnlab.models.vgg import CFGS

STRIDES = (32, 16, 8, 4, 2)

__all__ = ["FCN", "VGGBackbone", "ResNetBackbone", "FastNetBackbone", "bilinear_kernel", "bilinear_upsampler",
           "init_from_resnet", "init_from_vgg"]


def bilinear_kernel(size: int) -> torch.Tensor:
    """The ``size x size`` bilinear interpolation kernel (the FCN reference code's ``upsample_filt``):
    ``w(u, v) = (1 - |u - c| / f)(1 - |v - c| / f)``, ``f = ceil(size / 2)``, ``c = f - 1`` for odd
    sizes, ``f - 1/2`` for even."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = torch.arange(size, dtype=torch.float64)
    filt = 1 - (og - center).abs() / factor
    return torch.outer(filt, filt).float()


def bilinear_upsampler(channels: int, factor: int, trainable: bool = True) -> nn.ConvTranspose2d:
    """``ConvTranspose2d(channels, channels, 2f - f mod 2, stride f, padding (k - f)/2)`` that upsamples
    each channel by ``f`` with bilinear interpolation (output size ``f x`` the input's): channel ``c``
    reads only channel ``c`` at the start; the off-diagonal weights exist so a learned upsampler can
    mix classes, as Caffe's full ``Deconvolution`` in the FCN reference nets. ``trainable=False``
    freezes it (the paper's final upsampling, §4.2)."""
    k = 2 * factor - factor % 2
    up = nn.ConvTranspose2d(channels, channels, k, stride=factor, padding=(k - factor) // 2, bias=False)
    reset_bilinear_(up)
    up.weight.requires_grad_(trainable)
    return up


def reset_bilinear_(up: nn.ConvTranspose2d) -> None:
    with torch.no_grad():
        up.weight.zero_()
        if up.weight.is_meta:
            return
        kernel = bilinear_kernel(up.kernel_size[0]).to(up.weight)
        for c in range(min(up.in_channels, up.out_channels)):
            up.weight[c, c] = kernel


def _crop(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Zero-offset crop of ``x`` to ``like``'s spatial size (see the module docstring)."""
    return x[..., : like.shape[-2], : like.shape[-1]]


class FCN(nn.Module):
    """FCN-32s / 16s / 8s (and 4s / 2s) on a backbone returning its pooled maps (pool1, ..., pool5) at
    1/2, 1/4, ..., 1/32 of the input (``backbone.channels``: their widths).

    ``head`` maps pool5 to the features the score layer reads (fc6/fc7 as convolutions for VGG,
    the identity for backbones without FC layers). ``forward(x) -> [B, K, H, W]`` logits at the input
    size.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, stride: int = 8, head: nn.Module | None = None,
                 head_channels: int | None = None) -> None:
        super().__init__()
        if stride not in STRIDES:
            raise ValueError(f"FCN stride must be one of {', '.join(map(str, STRIDES))}, got {stride}")
        self.num_classes, self.stride = num_classes, stride
        self.backbone = backbone
        self.head = head if head is not None else nn.Identity()
        self.score_fr = _zero_conv1x1(head_channels or backbone.channels[-1], num_classes)  # §4.3: zero-initialised
        # skip k fuses pool_k (1/2^k); the paper's names: upscore2 + score_pool4, upscore_pool4 + score_pool3, ...
        self.skips = [k for k in (4, 3, 2, 1) if 2**k >= stride]
        for k in self.skips:
            setattr(self, _upsampler_name(k), bilinear_upsampler(num_classes, 2))
            setattr(self, f"score_pool{k}", _zero_conv1x1(backbone.channels[k - 1], num_classes))
        self.upscore = bilinear_upsampler(num_classes, stride, trainable=False)

    @property
    def needs_data_init(self) -> bool:
        return bool(getattr(self.backbone, "needs_data_init", False))

    def init_from_data(self, x: torch.Tensor) -> None:
        """Data-dependent initialisation of the backbone (FastNet's whitened stem); a no-op otherwise."""
        if hasattr(self.backbone, "init_from_data"):
            self.backbone.init_from_data(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pools = self.backbone(x)  # pool1 ... pool5
        score = self.score_fr(self.head(pools[4]))
        for k in self.skips:
            up = getattr(self, _upsampler_name(k))
            score = _crop(up(score), pools[k - 1]) + getattr(self, f"score_pool{k}")(pools[k - 1])
        # the fixed final upsampler runs in fp32 even under autocast: on CPUs, oneDNN's bf16 transposed
        # convolution with FCN-32s's 64x64 kernel made a training step 7x slower than the whole fp32 network
        device = score.device.type
        if device in ("cpu", "cuda") and torch.is_autocast_enabled(device):
            with torch.autocast(device, enabled=False):
                return _crop(self.upscore(score.float()), x)
        return _crop(self.upscore(score), x)


def _upsampler_name(k: int) -> str:
    """The learned 2x upsampling before the pool_k skip, named as in the paper's nets (upscore2, upscore_pool4)."""
    return "upscore2" if k == 4 else f"upscore_pool{k + 1}"


def _zero_conv1x1(cin: int, cout: int) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class VGGBackbone(nn.Module):
    """VGG conv layers (``features``, torchvision's indices and keys) with ``ceil_mode`` pooling;
    returns pool1, ..., pool5."""

    def __init__(self, cfg: str = "D", in_chans: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_chans
        for v in CFGS[cfg]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            else:
                layers += [nn.Conv2d(channels, int(v), 3, padding=1), nn.ReLU(inplace=True)]
                channels = int(v)
        self.features = nn.Sequential(*layers)
        self.ends = [i + 1 for i, m in enumerate(layers) if isinstance(m, nn.MaxPool2d)]  # after each pool
        self.channels = tuple(self.features[i - 3].out_channels for i in self.ends)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        pools, start = [], 0
        for end in self.ends:
            x = self.features[start:end](x)
            pools.append(x)
            start = end
        return tuple(pools)


def vgg_fc_head(in_channels: int = 512, width: int = 4096, dropout: float = 0.5) -> nn.Sequential:
    """fc6 (7x7 conv, padding 3: crop-free) and fc7 (1x1 conv), each with ReLU and dropout (§4.1)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 7, padding=3), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Conv2d(width, width, 1), nn.ReLU(inplace=True), nn.Dropout(dropout),
    )


class ResNetBackbone(nn.Module):
    """A ResNet's stem and stages (torchvision keys, no ``fc``); pool1 = conv1 (after BN, ReLU), pool2 = layer1,
    pool3/4/5 = layer2/3/4 outputs."""

    def __init__(self, layers: tuple[int, ...] = (2, 2, 2, 2), in_chans: int = 3) -> None:
        super().__init__()
        net = ResNet(BasicBlock, list(layers), num_classes=1, in_chans=in_chans)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.channels = (64, 64, 128, 256, 512)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        pool1 = self.relu(self.bn1(self.conv1(x)))
        pool2 = self.layer1(self.maxpool(pool1))
        pool3 = self.layer2(pool2)
        pool4 = self.layer3(pool3)
        return pool1, pool2, pool3, pool4, self.layer4(pool4)


class FastNetBackbone(StemDataInit, nn.Module):
    """FastNet's stem (``pool``: conv at full resolution, 2x2 pool, BN, ReLU; or ``stride2`` / ``whitened``: a
    4x4 stride-2 conv, learned or whitened from data and frozen) and four ``PoolBlock``s, each halving the
    resolution: strides 2, 4, 8, 16, 32 = pool1 ... pool5."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128, 256), in_chans: int = 1,
                 stem: str = "pool") -> None:
        super().__init__()
        if len(widths) != 5:
            raise ValueError(f"FastNetBackbone needs 5 widths (strides 2..32), got {widths}")
        self.stem = make_stem(stem, in_chans, widths[0])
        self.block1 = PoolBlock(widths[0], widths[1])
        self.block2 = PoolBlock(widths[1], widths[2])
        self.block3 = PoolBlock(widths[2], widths[3])
        self.block4 = PoolBlock(widths[3], widths[4])
        self.channels = tuple(widths)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        pool1 = self.stem(x)
        pool2 = self.block1(pool1)
        pool3 = self.block2(pool2)
        pool4 = self.block3(pool3)
        return pool1, pool2, pool3, pool4, self.block4(pool4)


def fcn_vgg16(stride: int, num_classes: int = 21, in_chans: int = 3) -> FCN:
    """FCN-``stride``s on VGG-16 (configuration D) with fc6/fc7 as convolutions (§4.1)."""
    backbone = VGGBackbone("D", in_chans)
    head = vgg_fc_head(backbone.channels[-1])
    init_weights_(backbone)
    init_weights_(head)
    return FCN(backbone, num_classes, stride, head=head, head_channels=4096)


def fcn_resnet18(stride: int, num_classes: int = 21, in_chans: int = 3) -> FCN:
    return FCN(ResNetBackbone((2, 2, 2, 2), in_chans), num_classes, stride)


def fcn_fastnet(stride: int, num_classes: int = 11, in_chans: int = 1,
                widths: tuple[int, ...] = (16, 32, 64, 128, 256), stem: str = "pool") -> FCN:
    return FCN(FastNetBackbone(widths, in_chans, stem=stem), num_classes, stride)


def init_from_vgg(fcn: FCN, vgg: nn.Module) -> FCN:
    """Initialise an FCN-VGG's backbone and fc6/fc7 from a (trained) VGG classifier (§4.1: "we
    cast ILSVRC classifiers into FCNs"): the conv weights copy over, the classifier's first two
    Linear layers are reshaped into the 7x7 fc6 and 1x1 fc7 convolutions. Returns ``fcn``."""
    from cnnlab.segmentation.convolutionalize import linear_to_conv

    fcn.backbone.features.load_state_dict(vgg.features.state_dict())
    fcs = [m for m in vgg.classifier if isinstance(m, nn.Linear)]
    convs = [m for m in fcn.head if isinstance(m, nn.Conv2d)]
    if len(fcs) < 2 or fcs[0].in_features != convs[0].in_channels * 49:
        raise ValueError("init_from_vgg needs a VGG with a 7x7x512 -> 4096 -> 4096 classifier")
    for lin, conv in zip(fcs[:2], convs):
        src = linear_to_conv(lin, (7, 7) if lin is fcs[0] else (1, 1), padding=conv.padding)
        conv.load_state_dict(src.state_dict())
    return fcn


def init_from_resnet(fcn: FCN, resnet: nn.Module) -> FCN:
    """Initialise an FCN-ResNet's backbone from a (trained) ResNet classifier of the same depth: every
    weight but ``fc`` copies over (same keys). Returns ``fcn``."""
    state = {k: v for k, v in resnet.state_dict().items() if not k.startswith("fc.")}
    fcn.backbone.load_state_dict(state)
    return fcn
