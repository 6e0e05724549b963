"""Small configurable nets for controlled experiments (the lab), not part of the zoo.

Each isolates one design choice with everything else held equal:

- :func:`kernel_stack_net`: stages of ``layers`` KxK convs (3x3x3) or one conv with the same receptive
  field (7x7x1), each stage followed by 2x2 max-pooling; GAP + linear head (Simonyan & Zisserman 2015, §2.3).
- :func:`deep_plain_net`: ``depth`` equal-width layers (fully connected or 3x3 conv) with a chosen
  activation, optionally batch norm -- the setting of the vanishing-gradient analyses (Glorot & Bengio
  2010; Ioffe & Szegedy 2015) and of AlexNet's ReLU-vs-tanh comparison (Krizhevsky et al. 2012, Fig. 1).
- :func:`fc_head_net`: conv features -> flatten -> FC layers, the classifier FCN convolutionalizes
  (Long et al. 2015, §3.1).
- :func:`bottleneck_net`: a 3x3 conv per block, or its 1x1-reduce -> 3x3 -> 1x1-expand twin at the same
  in/out width (He et al. 2016, §4.1 "Deeper Bottleneck Architectures", Fig. 5).
"""

from __future__ import annotations

from torch import nn

from cnnlab.errors import ConfigError

__all__ = ["ACTIVATIONS", "TwoLayerBlock", "block_net", "bottleneck_net", "conv_bn_relu", "deep_plain_net",
           "fc_head_net", "kernel_stack_net"]

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
