"""Small configurable nets for controlled experiments (the lab), not part of the zoo.

Each isolates one design choice with everything else held equal:

- :func:`kernel_stack_net`: stages of ``layers`` KxK convs (3x3x3) or one conv with the same receptive
  field (7x7x1), each stage followed by 2x2 max-pooling; GAP + linear head (Simonyan & Zisserman 2015, §2.3).
- :func:`deep_plain_net`: ``depth`` equal-width layers (fully connected or 3x3 conv) with a chosen
  activation, optionally batch norm -- the setting of the vanishing-gradient analyses (Glorot & Bengio
  2010; Ioffe & Szegedy 2015) and of AlexNet's ReLU-vs-tanh comparison (Krizhevsky et al. 2012, Fig. 1).
- :func:`fc_head_net`: conv features -> flatten -> FC layers, the classifier FCN convolutionalizes
  (Long et al. 2015, §3.1).
- :func:`regularization_net`: the same conv-conv-FC-FC shape with a dropout layer before the classifier
  (Srivastava et al. 2014; ``p=0`` until ``TrainConfig.dropout`` sets it) and batch norm on or off (Ioffe &
  Szegedy 2015) -- an FC-heavy net that overfits a small training set, for the regularization arms.
- :func:`residual_se_net`: a small CIFAR-style ResNet, with or without squeeze-and-excitation blocks on
  every residual branch (Hu et al. 2018, Fig. 3).
- :func:`alexnet_like_net`: three conv stages with local response normalisation and overlapping (3x3/2)
  or non-overlapping (2x2/2) max-pooling switched on or off (Krizhevsky et al. 2012, §3.3-3.4).
- :func:`aux_head_net`: a deep plain conv net with GoogLeNet-style auxiliary classifiers on intermediate
  layers, trained with ``loss + 0.3 * sum(aux losses)`` (Szegedy et al. 2015, §5).
- :func:`bottleneck_net`: a 3x3 conv per block, or its 1x1-reduce -> 3x3 -> 1x1-expand twin at the same
  in/out width (He et al. 2016, §4.1 "Deeper Bottleneck Architectures", Fig. 5).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.models._base import AuxClassifierMixin
from cnnlab.models.alexnet import local_response_norm
from cnnlab.models.resnet_cifar import CifarBasicBlock
from cnnlab.models.senet import add_se

__all__ = ["ACTIVATIONS", "AuxHeadNet", "TwoLayerBlock", "alexnet_like_net", "aux_head_net", "block_net",
           "bottleneck_net", "conv_bn_relu", "deep_plain_net", "fc_head_net", "kernel_stack_net",
           "regularization_net", "residual_se_net"]

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def _activation(name: str) -> type[nn.Module]:
    if name not in ACTIVATIONS:
        raise ConfigError(f"activation {name!r} is not one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def kernel_stack_net(kernel: int = 3, layers: int = 3, widths: tuple[int, ...] = (16, 32), in_chans: int = 1,
                     num_classes: int = 10, activation: str = "relu", batch_norm: bool = True) -> nn.Sequential:
    """Per stage: ``layers`` KxK 'same' convs (each followed by [BN and] the activation), then 2x2 max-pool.
    ``kernel=3, layers=3`` and ``kernel=7, layers=1`` have the same receptive field per stage."""
    act = _activation(activation)
    mods: list[nn.Module] = []
    c = in_chans
    for width in widths:
        for _ in range(layers):
            mods += [nn.Conv2d(c, width, kernel, padding=kernel // 2, bias=not batch_norm)]
            mods += [nn.BatchNorm2d(width), act()] if batch_norm else [act()]
            c = width
        mods.append(nn.MaxPool2d(2))
    return nn.Sequential(*mods, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))


def deep_plain_net(depth: int = 20, width: int = 64, activation: str = "relu", batch_norm: bool = False,
                   kind: str = "mlp", in_features: int = 784, in_chans: int = 1,
                   num_classes: int = 10) -> nn.Sequential:
    """``depth`` hidden layers of ``width`` units (``kind="mlp"``, input flattened) or 3x3 conv channels
    (``kind="conv"``), each ``layer -> [BN] -> activation``, then a linear classifier. PyTorch's default
    initialisation (Kaiming-uniform with a=sqrt(5)) everywhere, as a net is built without special care."""
    act = _activation(activation)
    if kind not in ("mlp", "conv"):
        raise ConfigError(f"kind must be 'mlp' or 'conv', got {kind!r}")
    mods: list[nn.Module] = [nn.Flatten()] if kind == "mlp" else []
    c = in_features if kind == "mlp" else in_chans
    for _ in range(depth):
        if kind == "mlp":
            mods += [nn.Linear(c, width)] + ([nn.BatchNorm1d(width)] if batch_norm else [])
        else:
            mods += [nn.Conv2d(c, width, 3, padding=1)] + ([nn.BatchNorm2d(width)] if batch_norm else [])
        mods.append(act())
        c = width
    if kind == "conv":
        mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*mods, nn.Linear(c, num_classes))


def fc_head_net(in_chans: int = 1, img_size: int = 28, widths: tuple[int, int] = (16, 32), hidden: int = 64,
                num_classes: int = 10) -> nn.Sequential:
    """Two conv-ReLU-pool stages -> flatten -> FC(hidden) -> ReLU -> FC(classes): a small classifier whose
    FC head reads a fixed ``img_size/4`` map, as AlexNet's fc6 reads 6x6."""
    if img_size % 4:
        raise ConfigError(f"img_size must be a multiple of 4, got {img_size}")
    a, b = widths
    side = img_size // 4
    return nn.Sequential(
        nn.Conv2d(in_chans, a, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(a, b, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(b * side * side, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


def regularization_net(widths: tuple[int, int] = (16, 32), hidden: int = 128, dropout: float = 0.0,
                       batch_norm: bool = False, in_chans: int = 1, img_size: int = 28,
                       num_classes: int = 10) -> nn.Sequential:
    """``[conv3x3 -> (BN) -> ReLU -> pool] x 2 -> flatten -> FC(hidden) -> (BN) -> ReLU -> Dropout(p) -> FC``.
    The dropout layer is always there (``p=0`` is the identity), so ``TrainConfig.dropout`` switches it on."""
    if img_size % 4:
        raise ConfigError(f"img_size must be a multiple of 4, got {img_size}")
    a, b = widths
    side = img_size // 4

    def conv(cin: int, cout: int) -> list[nn.Module]:
        norm = [nn.BatchNorm2d(cout)] if batch_norm else []
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=not batch_norm), *norm, nn.ReLU(), nn.MaxPool2d(2)]

    norm = [nn.BatchNorm1d(hidden)] if batch_norm else []
    return nn.Sequential(*conv(in_chans, a), *conv(a, b), nn.Flatten(),
                         nn.Linear(b * side * side, hidden, bias=not batch_norm), *norm, nn.ReLU(),
                         nn.Dropout(dropout), nn.Linear(hidden, num_classes))


class TwoLayerBlock(nn.Module):
    """``relu(x + F(x))`` with ``F = linear-BN-relu-linear-BN`` (He et al. 2016, Fig. 2), or ``relu(F(x))``
    without the shortcut: the plain twin with exactly the same weights."""

    def __init__(self, width: int, residual: bool = True) -> None:
        super().__init__()
        self.residual = residual
        self.fc1 = nn.Linear(width, width, bias=False)
        self.bn1 = nn.BatchNorm1d(width)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(width, width, bias=False)
        self.bn2 = nn.BatchNorm1d(width)

    def forward(self, x):
        out = self.bn2(self.fc2(self.relu(self.bn1(self.fc1(x)))))
        return self.relu(out + x if self.residual else out)


def block_net(depth: int = 20, width: int = 64, residual: bool = True, in_features: int = 784,
              num_classes: int = 10) -> nn.Sequential:
    """``depth`` weighted layers: a linear stem, ``(depth - 2) / 2`` :class:`TwoLayerBlock` s, a linear head --
    the plain-vs-residual comparison of He et al. 2016 (§4.1, Fig. 4) on an MLP, cheap enough for a CPU."""
    if depth < 4 or depth % 2:
        raise ConfigError(f"depth must be an even number >= 4 (stem + 2-layer blocks + head), got {depth}")
    blocks = [TwoLayerBlock(width, residual) for _ in range((depth - 2) // 2)]
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(),
                         *blocks, nn.Linear(width, num_classes))


def residual_se_net(widths: tuple[int, ...] = (8, 16, 32), blocks: int = 1, se_reduction: int = 0,
                    in_chans: int = 1, num_classes: int = 10) -> nn.Sequential:
    """3x3 stem -> per stage ``blocks`` :class:`~cnnlab.models.resnet_cifar.CifarBasicBlock` s (stride 2 from
    the second stage on) -> GAP -> linear: ResNet-20's layout (He et al. 2016, §4.2) at any width. With
    ``se_reduction = r > 0`` :func:`~cnnlab.models.senet.add_se` puts an SE block ``C -> C/r -> C`` on every
    residual branch; everything else (and, for the same seed, every other initial weight) is unchanged."""
    mods: list[nn.Module] = [nn.Conv2d(in_chans, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]),
                             nn.ReLU(inplace=True)]
    c = widths[0]
    for i, width in enumerate(widths):
        for j in range(blocks):
            mods.append(CifarBasicBlock(c, width, 2 if i > 0 and j == 0 else 1))
            c = width
    net = nn.Sequential(*mods, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))
    return add_se(net, se_reduction) if se_reduction else net


def alexnet_like_net(widths: tuple[int, int, int] = (16, 32, 48), lrn: bool = True, overlap: bool = True,
                     hidden: int = 128, dropout: float = 0.5, in_chans: int = 1,
                     num_classes: int = 10) -> nn.Sequential:
    """AlexNet's conv1/conv2 pattern shrunk: conv5x5 -> ReLU -> [LRN] -> pool, twice, then conv3x3 -> ReLU ->
    pool -> dropout -> FC(hidden) -> ReLU -> dropout -> FC. LRN as AlexNet §3.3 (k=2, n=5, alpha=1e-4,
    beta=0.75); pooling 3x3 stride 2 (overlapping, §3.4; padding 1) or 2x2 stride 2 (ceil mode): both halve
    the map the same way (28 -> 14 -> 7 -> 4), so the head and the parameter count are identical (an adaptive
    4x4 max-pool, an identity at 28x28, fixes the head's input for other sizes)."""
    a, b, c = widths

    def pool() -> nn.Module:
        return nn.MaxPool2d(3, stride=2, padding=1) if overlap else nn.MaxPool2d(2, stride=2, ceil_mode=True)

    def norm() -> list[nn.Module]:
        return [local_response_norm()] if lrn else []

    return nn.Sequential(
        nn.Conv2d(in_chans, a, 5, padding=2), nn.ReLU(inplace=True), *norm(), pool(),
        nn.Conv2d(a, b, 5, padding=2), nn.ReLU(inplace=True), *norm(), pool(),
        nn.Conv2d(b, c, 3, padding=1), nn.ReLU(inplace=True), pool(),
        nn.AdaptiveMaxPool2d(4), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c * 16, hidden), nn.ReLU(inplace=True),
        nn.Dropout(dropout), nn.Linear(hidden, num_classes))


class AuxHeadNet(AuxClassifierMixin, nn.Module):
    """``depth`` 3x3 conv-ReLU layers (no batch norm, as GoogLeNet v1) in three stages split by 2x2 max-pools,
    GAP, linear classifier; with ``aux`` an auxiliary classifier after layer ``depth // 3`` and ``2 * depth // 3``
    (GoogLeNet puts them on inception 4a and 4d, §5): average pool to 2x2 -> FC(``aux_hidden``) -> ReLU ->
    dropout 0.7 -> FC. In training mode it returns :class:`~cnnlab.models.AuxOutputs` (weight 0.3), which the
    training engine adds to the loss; in eval mode only the main logits."""

    classifier_name = "fc"

    def __init__(self, depth: int = 9, width: int = 16, aux: bool = True, aux_hidden: int = 64, in_chans: int = 1,
                 num_classes: int = 10) -> None:
        super().__init__()
        if depth < 3:
            raise ConfigError(f"depth must be at least 3 (three stages), got {depth}")
        self.num_classes, self.num_features, self.aux_logits = num_classes, width, aux
        self.taps = (depth // 3, 2 * depth // 3) if aux else ()
        layers: list[nn.Module] = []
        for i in range(depth):
            if i and i * 3 // depth != (i - 1) * 3 // depth:  # a new stage starts: halve the map
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            layers += [nn.Conv2d(in_chans if i == 0 else width, width, 3, padding=1), nn.ReLU(inplace=True)]
        self.layers = nn.ModuleList(layers)
        self.aux_heads = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * width, aux_hidden),
                          nn.ReLU(inplace=True), nn.Dropout(0.7), nn.Linear(aux_hidden, num_classes))
            for _ in self.taps)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        aux: list[torch.Tensor] = []
        conv = 0
        for layer in self.layers:
            x = layer(x)
            if isinstance(layer, nn.ReLU):
                conv += 1
                if self.training and conv in self.taps:
                    aux.append(self.aux_heads[self.taps.index(conv)](x))
        return x, aux

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.pool(x), 1)
        return x if pre_logits else self.fc(x)


def aux_head_net(depth: int = 9, width: int = 16, aux: bool = True, in_chans: int = 1,
                 num_classes: int = 10) -> AuxHeadNet:
    """:class:`AuxHeadNet`; ``aux=False`` is the same trunk and classifier without the auxiliary heads."""
    return AuxHeadNet(depth, width, aux, in_chans=in_chans, num_classes=num_classes)


def conv_bn_relu(c_in: int, c_out: int, kernel: int) -> list[nn.Module]:
    """A 'same' KxK conv without bias, BN, ReLU."""
    return [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


def bottleneck_net(bottleneck: bool = False, width: int = 32, reduction: int = 4, blocks: int = 2,
                   in_chans: int = 1, num_classes: int = 10) -> nn.Sequential:
    """A 3x3 stem to ``width``, then ``blocks`` blocks at ``width`` in and out, each followed by 2x2 max-pooling;
    GAP + linear head. A block is one 3x3 conv (``9 w^2`` weights), or with ``bottleneck=True`` a 1x1 reduction
    to ``w / reduction``, a 3x3 conv there and a 1x1 expansion back (``2 w m + 9 m^2`` weights, ``m = w / r``);
    every conv is followed by BN and ReLU."""
    if width % reduction:
        raise ConfigError(f"width {width} must be divisible by reduction {reduction}")
    m = width // reduction
    mods: list[nn.Module] = [*conv_bn_relu(in_chans, width, 3), nn.MaxPool2d(2)]
    for _ in range(blocks):
        if bottleneck:
            mods += [*conv_bn_relu(width, m, 1), *conv_bn_relu(m, m, 3), *conv_bn_relu(m, width, 1)]
        else:
            mods += conv_bn_relu(width, width, 3)
        mods.append(nn.MaxPool2d(2))
    return nn.Sequential(*mods, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))
