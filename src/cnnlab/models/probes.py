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
"""

from __future__ import annotations

from torch import nn

from cnnlab.errors import ConfigError

__all__ = ["ACTIVATIONS", "TwoLayerBlock", "block_net", "deep_plain_net", "fc_head_net", "kernel_stack_net",
           "regularization_net"]

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
