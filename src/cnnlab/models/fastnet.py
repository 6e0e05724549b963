"""FastNet: a small CNN designed for fast CPU training on 28x28 grey images (cnnlab's own design).

Not a paper model: it is the architecture of the ``fashion-fast`` recipe, adapted from the fast
CIFAR-10 training nets -- D. Page, "How to train your ResNet" (2018, the DAWNBench "ResNet-9"
blocks: conv -> max-pool -> BN -> ReLU) and K. Jordan, "94% on CIFAR-10 in 3.29 seconds on a
single GPU" (airbench, 2024: conv-pool-BN-act / conv-BN-act blocks, global max-pooling head,
scaled logits) -- to 28x28x1 on a 2-core CPU, where the cost is set by the multiply-adds:

    stem     3x3 conv C -> w0, 2x2 max-pool, BN, ReLU                             28x28 -> 14x14
    block1   3x3 conv w0 -> w1, 2x2 max-pool, BN, ReLU; 3x3 conv w1 -> w1, BN, ReLU   14 -> 7
    block2   3x3 conv w1 -> w2, 2x2 max-pool, BN, ReLU; 3x3 conv w2 -> w2, BN, ReLU    7 -> 4
    head     global max-pool, Linear(w2, classes), logits * ``logit_scale``

(pools use ``ceil_mode`` so 7x7 -> 4x4 keeps the last row and column). ``stem="stride2"`` replaces the stem's
conv + pool by one 4x4 stride-2 conv; ``stem="whitened"`` (the ``fashion-fast`` recipe's) makes that conv
airbench's frozen patch-whitening layer, set from training images by ``init_from_data`` (:class:`WhitenedStem`).
``fastnet`` (w = 32, 64, 128) costs 11.6 M multiply-adds per 1x28x28 image and has 278,890 parameters for 10 classes;
``fastnet_s`` (24, 48, 96) 6.6 M and 157,330. The architecture does not depend on ``img_size``
(global pooling takes any size); it is meant for small inputs and is not an ImageNet model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models._base import ClassifierMixin
from cnnlab.models._registry import register_model

__all__ = ["FastNet", "StemDataInit", "WhitenedStem", "fastnet", "fastnet_s", "make_stem"]

_PAPER = ("cnnlab design after Page, How to train your ResNet (2018) and Jordan, "
          "94% on CIFAR-10 in 3.29 seconds on a single GPU (airbench, 2024)")


class Stem(nn.Module):
    """``ReLU(BN(maxpool2(conv3x3(x))))``: one full-resolution convolution, then 2x down-sampling.

    With 1 input channel the convolution is nearly free (9 MACs per output value); pooling before
    BN/ReLU keeps the elementwise work at a quarter of the full-resolution map. ``stride2=True``
    replaces conv + pool by one 4x4 stride-2 convolution (padding 1: every pixel is seen, 28 -> 14):
    no full-resolution feature map at all. The full-resolution max-pool's forward and backward took
    about a third of a training step on a 2-core CPU (``benchmarks/bench_record.py --profile``).
    """

    def __init__(self, in_channels: int, out_channels: int, stride2: bool = False) -> None:
        super().__init__()
        k, stride = (4, 2) if stride2 else (3, 1)
        self.conv = nn.Conv2d(in_channels, out_channels, k, stride=stride, padding=1, bias=False)
        self.pool = nn.Identity() if stride2 else nn.MaxPool2d(2, ceil_mode=True)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.pool(self.conv(x))))


class WhitenedStem(nn.Module):
    """airbench's first layer (Jordan 2024; patch whitening after Coates & Ng 2011), on FastNet's 4x4 stride-2
    stem: ``ReLU(BN(conv4x4/2(x)))`` whose filters are the PCA-whitening of the training images' 4x4 patches --
    eigenvector ``v_i`` of the patch covariance scaled by ``1 / sqrt(lambda_i + eps)``, and its negative, so
    that the ReLU keeps both signs -- and are **frozen** (no weight gradient, no input gradient: the stem's
    backward pass disappears). ``out_channels / 2`` components with the largest eigenvalues are used (all 16
    for 32 channels on grey images). The filters come from data: :meth:`init_from_data` (``cnnlab.train.fit``
    calls it with the first 5,000 training images, normalised, not augmented); training without it is an error.
    """

    kernel = 4

    def __init__(self, in_channels: int, out_channels: int, eps: float = 5e-4) -> None:
        super().__init__()
        dims = in_channels * self.kernel**2
        if out_channels % 2 or out_channels // 2 > dims:
            raise ValueError(f"stem='whitened' needs an even width of at most 2 x {dims} (the 4x4 patch "
                             f"dimensions of {in_channels} channel(s), each eigenvector and its negative), "
                             f"got {out_channels}")
        self.eps = eps
        self.conv = nn.Conv2d(in_channels, out_channels, self.kernel, stride=2, padding=1, bias=False)
        self.conv.weight.requires_grad_(False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.register_buffer("whitened", torch.zeros(()))  # 1 once init_from_data ran; saved in checkpoints

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """Set the filters from images ``x`` ``[N, C, H, W]`` (normalised as in training)."""
        w = self.conv.weight
        n, dims = w.shape[0] // 2, w[0].numel()
        patches = F.unfold(x.double(), self.kernel, stride=2, padding=1).transpose(1, 2).reshape(-1, dims)
        eigval, eigvec = torch.linalg.eigh(patches.T @ patches / len(patches))  # ascending
        eigval, eigvec = eigval.flip(0)[:n], eigvec.flip(1)[:, :n]
        peak = eigvec.abs().argmax(0)  # an eigenvector's sign is arbitrary: make its largest entry positive
        eigvec = eigvec * eigvec.gather(0, peak[None]).sign()
        filters = eigvec.T / (eigval.clamp_min(0) + self.eps).sqrt()[:, None]
        w.copy_(torch.cat([filters, -filters]).reshape_as(w).to(w))
        self.whitened.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not self.whitened:
            raise RuntimeError("FastNet's whitened stem has no filters yet: call model.init_from_data(images) "
                               "with training images before training (cnnlab.train.fit does this)")
        return self.relu(self.bn(self.conv(x)))


class PoolBlock(nn.Module):
    """Page's / airbench's block: ``x = ReLU(BN(maxpool2(conv1(x))))``, ``out = ReLU(BN(conv2(x)))``.

    Pooling right after the first convolution halves the resolution before the second one, so the
    block costs ``9 HW c_in c_out + 9 (HW/4) c_out^2`` multiply-adds for an ``H x W`` input.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)  # 7x7 -> 4x4 keeps the last row and column
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.pool(self.conv1(x))))
        return self.relu(self.bn2(self.conv2(x)))


class StemDataInit:
    """For networks with a ``stem`` that may be a :class:`WhitenedStem` (FastNet, the FCN's FastNet backbone):
    the data-dependent initialisation protocol that ``cnnlab.train.fit`` follows."""

    @property
    def needs_data_init(self) -> bool:
        """True while a whitened stem has no filters: ``fit`` then calls :meth:`init_from_data` (a loaded or
        already trained model keeps its filters, e.g. when it is fine-tuned on other data)."""
        return isinstance(self.stem, WhitenedStem) and not self.stem.whitened

    def init_from_data(self, x: torch.Tensor) -> None:
        """Data-dependent initialisation (the whitened stem's filters from images ``x``); a no-op otherwise."""
        if isinstance(self.stem, WhitenedStem):
            self.stem.init_from_data(x)


def make_stem(stem: str, in_channels: int, out_channels: int) -> nn.Module:
    """``pool`` (conv3x3 + max-pool), ``stride2`` (one 4x4 stride-2 conv) or ``whitened`` (that conv, whitened
    from data and frozen): each halves the resolution."""
    if stem not in ("pool", "stride2", "whitened"):
        raise ValueError(f"stem={stem!r} is not one of pool, stride2, whitened")
    if stem == "whitened":
        return WhitenedStem(in_channels, out_channels)
    return Stem(in_channels, out_channels, stride2=stem == "stride2")


class FastNet(ClassifierMixin, StemDataInit, nn.Module):
    """Stem (conv, pool) -> PoolBlocks -> global max-pool -> Linear, logits scaled by ``logit_scale``.

    ``logit_scale`` (airbench's output temperature, 1/9 there) keeps the initial logits small so the
    high one-cycle learning rate does not saturate the softmax early.
    """

    classifier_name = "fc"

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128), num_classes: int = 1000, in_chans: int = 3,
                 logit_scale: float = 0.125, stem: str = "pool") -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = widths[-1]
        self.logit_scale = logit_scale
        self.stem = make_stem(stem, in_chans, widths[0])
        self.blocks = nn.Sequential(*[PoolBlock(widths[i], widths[i + 1]) for i in range(len(widths) - 1)])
        self.fc = nn.Linear(widths[-1], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # He et al. 2015, as torchvision's ResNet
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = F.adaptive_max_pool2d(x, 1).flatten(1)
        if pre_logits:
            return x
        return self.fc(x) * self.logit_scale


def _fastnet(default_widths: tuple[int, ...], num_classes: int, in_chans: int,
             widths: tuple[int, ...] | None = None, **kwargs) -> FastNet:
    """``widths`` replaces the variant's widths (architecture sweeps: ``model_kwargs={"widths": ...}``;
    the registered parameter count is the default's)."""
    return FastNet(tuple(widths or default_widths), num_classes=num_classes, in_chans=in_chans, **kwargs)


_INFO = dict(family="FastNet", paper=_PAPER, torchvision=None, params_source="cnnlab design (counted)",
             params_rtol=0.0, default_size=28, num_classes=10, in_chans=1,
             mean=(0.2860,), std=(0.3530,), min_size=1, first_conv="stem.conv", classifier="fc")


@register_model(params=278_890, **_INFO)
def fastnet(num_classes: int = 10, in_chans: int = 1, img_size: int = 28, **kwargs) -> FastNet:
    """FastNet, widths 32-64-128 (the ``fashion-fast`` recipe's model); ``img_size`` is accepted for
    the registry interface and does not change the architecture."""
    del img_size
    return _fastnet((32, 64, 128), num_classes, in_chans, **kwargs)


@register_model(params=157_330, **_INFO)
def fastnet_s(num_classes: int = 10, in_chans: int = 1, img_size: int = 28, **kwargs) -> FastNet:
    """FastNet-S, widths 24-48-96: about 0.57x the multiply-adds of ``fastnet``."""
    del img_size
    return _fastnet((24, 48, 96), num_classes, in_chans, **kwargs)
