"""LeNet-5 (LeCun, Bottou, Bengio & Haffner, "Gradient-Based Learning Applied to Document
Recognition", Proc. IEEE 86(11), 1998, §II.B and Appendix A).

``lenet5`` is the 1998 network: C1 6@5x5 -> S2 trainable subsampling -> C3 16@5x5 with the
partial connection table (Table I) -> S4 -> C5 120@5x5 -> F6 84 -> output, squashed with the
scaled tanh ``f(a) = 1.7159 tanh(2a/3)`` (Appendix A). The output layer is a linear classifier
instead of the paper's Euclidean RBF units. 60,850 parameters for 10 classes.

``lenet5_modern`` is the textbook modernisation: ReLU, 2x2 max-pooling, C3 connected to all six
C1 maps (61,706 parameters for 10 classes).

Input sizes (both variants). The paper feeds 32x32 images, MNIST's 28x28 digits padded by 2
pixels (§III.A); inputs given as ``img_size < 32`` are zero-padded by 2 on each side in the same
way. C5 needs a 5x5 S4 map (32x32 input); for any other size an adaptive average pooling brings
S4's map to 5x5 first (an identity at 32x32), so 3x224x224 inputs work. ``img_size=12`` is the
smallest that leaves C3 a valid input (12+4 -> C1 12 -> S2 6 -> C3 2 -> S4 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models._base import ClassifierMixin
from cnnlab.models._registry import register_model

__all__ = ["LeNet5", "lenet5", "lenet5_modern", "C3_TABLE"]

_PAPER = "LeCun et al., Gradient-Based Learning Applied to Document Recognition, Proc. IEEE 1998"

# Table I: the C1 maps (0-5) each C3 map (0-15) is connected to.
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


class ScaledTanh(nn.Module):
    """The squashing function of Appendix A: ``f(a) = A tanh(S a)`` with A = 1.7159, S = 2/3."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(x * (2.0 / 3.0))


class Subsampling(nn.Module):
    """S2/S4 (§II.B): each unit sums a non-overlapping 2x2 block, multiplies the sum by one trainable
    coefficient and adds one trainable bias per feature map (2 parameters per map)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels))
        self.bias = nn.Parameter(torch.empty(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        block_sum = 4.0 * F.avg_pool2d(x, 2)
        return block_sum * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class PartialConv2d(nn.Module):
    """C3 (§II.B, Table I): a 5x5 convolution where output map ``j`` sees only the input maps
    ``table[j]``. Only the connected 5x5 kernels are parameters (60 kernels + 16 biases = 1,516)."""

    def __init__(self, table: tuple[tuple[int, ...], ...], in_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, len(table), kernel_size
        out_idx = [j for j, inputs in enumerate(table) for _ in inputs]
        in_idx = [i for inputs in table for i in inputs]
        self.register_buffer("out_idx", torch.tensor(out_idx), persistent=False)
        self.register_buffer("in_idx", torch.tensor(in_idx), persistent=False)
        self.weight = nn.Parameter(torch.empty(len(in_idx), kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(len(table)))

    def full_weight(self) -> torch.Tensor:
        """The dense (out, in, k, k) kernel with zeros where Table I has no connection."""
        k = self.kernel_size
        w = self.weight.new_zeros(self.out_channels, self.in_channels, k, k)
        return w.index_put((self.out_idx, self.in_idx), self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.full_weight(), self.bias)


class LeNet5(ClassifierMixin, nn.Module):
    """LeNet-5 (Fig. 2): C1-S2-C3-S4-C5-F6-output, named as in the paper."""

    classifier_name = "output"

    def __init__(self, num_classes: int = 1000, in_chans: int = 1, modern: bool = False,
                 input_pad: int = 0) -> None:
        super().__init__()
        self.num_classes, self.num_features, self.modern = num_classes, 84, modern
        self.pad = nn.ZeroPad2d(input_pad) if input_pad else nn.Identity()
        self.c1 = nn.Conv2d(in_chans, 6, kernel_size=5)
        if modern:
            self.s2 = nn.MaxPool2d(2)
            self.c3: nn.Module = nn.Conv2d(6, 16, kernel_size=5)
            self.s4 = nn.MaxPool2d(2)
            self.act: nn.Module = nn.ReLU(inplace=True)
        else:
            self.s2 = Subsampling(6)
            self.c3 = PartialConv2d(C3_TABLE, 6, kernel_size=5)
            self.s4 = Subsampling(16)
            self.act = ScaledTanh()
        self.pool = nn.AdaptiveAvgPool2d(5)  # identity for 32x32 inputs (S4 is already 5x5)
        self.c5 = nn.Conv2d(16, 120, kernel_size=5)
        self.f6 = nn.Linear(120, 84)
        self.output = nn.Linear(84, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        if self.modern:  # PyTorch's default initialisation
            return
        # Appendix A: weights uniform in (-2.4/F_i, 2.4/F_i), F_i the fan-in of the unit.
        with torch.no_grad():
            fan_in_c3 = torch.tensor([len(t) * 25 for t in C3_TABLE], dtype=torch.float)
            for m in self.children():
                if isinstance(m, nn.Conv2d | nn.Linear):
                    fan_in = m.weight[0].numel()
                    nn.init.uniform_(m.weight, -2.4 / fan_in, 2.4 / fan_in)
                    nn.init.uniform_(m.bias, -2.4 / fan_in, 2.4 / fan_in)
                elif isinstance(m, Subsampling):
                    nn.init.uniform_(m.weight, -2.4 / 4, 2.4 / 4)
                    nn.init.uniform_(m.bias, -2.4 / 4, 2.4 / 4)
                elif isinstance(m, PartialConv2d):
                    bound = 2.4 / fan_in_c3.to(m.bias.device)
                    m.bias.copy_((torch.rand_like(m.bias) * 2 - 1) * bound)
                    m.weight.copy_((torch.rand_like(m.weight) * 2 - 1) * bound[m.out_idx].view(-1, 1, 1))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pad(x)
        if self.modern:  # conv -> ReLU -> max-pool
            x = self.s2(self.act(self.c1(x)))
            x = self.s4(self.act(self.c3(x)))
        else:  # the paper squashes the subsampling outputs (§II.B)
            x = self.act(self.s2(self.c1(x)))
            x = self.act(self.s4(self.c3(x)))
        return self.act(self.c5(self.pool(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.act(self.f6(torch.flatten(x, 1)))
        return x if pre_logits else self.output(x)


def _lenet(modern: bool, num_classes: int, in_chans: int, img_size: int, **kwargs) -> LeNet5:
    return LeNet5(num_classes, in_chans, modern=modern, input_pad=2 if img_size < 32 else 0, **kwargs)


@register_model(family="LeNet", paper=_PAPER, params=60_850,
                params_source="paper §II.B (60,000 trainable parameters; exact count of the described net)",
                default_size=32, num_classes=10, in_chans=1, mean=(0.5,), std=(0.5,), min_size=12, first_conv="c1",
                classifier="output")
def lenet5(num_classes: int = 10, in_chans: int = 1, img_size: int = 32, **kwargs) -> nn.Module:
    """LeNet-5 as in 1998: trainable subsampling, Table I C3, scaled tanh; linear output layer."""
    return _lenet(False, num_classes, in_chans, img_size, **kwargs)


@register_model(family="LeNet", paper=_PAPER, params=61_706,
                params_source="exact count, 1x32x32 input, 10 classes", default_size=32,
                num_classes=10, in_chans=1, mean=(0.5,), std=(0.5,), min_size=12,
                first_conv="c1", classifier="output")
def lenet5_modern(num_classes: int = 10, in_chans: int = 1, img_size: int = 32, **kwargs) -> nn.Module:
    """LeNet-5 with ReLU, max-pooling and a fully connected C3."""
    return _lenet(True, num_classes, in_chans, img_size, **kwargs)
