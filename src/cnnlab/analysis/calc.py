"""The textbook calculator: the arithmetic the lectures teach, one function per formula.

* :func:`conv_output_size` / :func:`conv_layer` -- output size W2 = (W1 - F + 2P)/S + 1 and
  parameters (F*F*D1)*K + K (CS231n, "Convolutional Neural Networks", conv layer summary).
* :func:`conv_stack` -- a stack of n KxK stride-1 convs sees n(K-1)+1 pixels with n*K^2*C^2
  weights and n nonlinearities, vs one larger layer (Simonyan & Zisserman 2015, VGG, §2.3:
  three 3x3 layers = one 7x7 field with 27C^2 instead of 49C^2 weights).
* :func:`depthwise_cost` -- depthwise-separable vs standard convolution (Howard et al. 2017,
  MobileNets, §3.1, eq. 4-5): D_K^2*M*N*D_F^2 vs D_K^2*M*D_F^2 + M*N*D_F^2, ratio 1/N + 1/D_K^2.
* :func:`bottleneck_cost` -- 1x1 reductions: GoogLeNet's reduce-then-convolve (Szegedy et al.
  2015, §4) and ResNet's 1x1-3x3-1x1 bottleneck (He et al. 2016, §4.1, Fig. 5).

All MAC counts: one multiply-add = 1 MAC, biases not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnlab.errors import ConfigError

__all__ = [
    "ConvResult", "StackResult", "DepthwiseResult", "BottleneckResult",
    "conv_output_size", "conv_layer", "conv_stack", "depthwise_cost", "bottleneck_cost", "BOTTLENECK_EXAMPLES",
]


def _positive(**values: int) -> None:
    for k, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{k} must be a positive integer, got {v!r}")


def conv_output_size(size: int, kernel: int, stride: int = 1, pad: int = 0, dilation: int = 1) -> int:
    """W2 = (W1 - F + 2P)/S + 1 with F = dilation*(kernel-1)+1; a non-integer result is an error.

    The error shows the arithmetic: ``(224 - 11)/4 + 1 = 54.25``.
    """
    _positive(size=size, kernel=kernel, stride=stride, dilation=dilation)
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ConfigError(f"pad must be an integer >= 0, got {pad!r}")
    f = dilation * (kernel - 1) + 1
    span = size - f + 2 * pad
    expr = f"({size} - {f}{f' + 2*{pad}' if pad else ''})/{stride} + 1"
    if span < 0:
        raise ConfigError(f"kernel larger than the padded input: {expr} = {span / stride + 1:g}")
    if span % stride:
        raise ConfigError(f"output size is not an integer: {expr} = {span / stride + 1:g}; "
                          "change the padding or stride so the filters tile the input")
    return span // stride + 1


@dataclass(frozen=True)
class ConvResult:
    """One conv layer on an H x W x D input (CS231n's W1 x H1 x D1 notation)."""

    input: tuple[int, int, int]
    output: tuple[int, int, int]
    kernel: int
    stride: int
    pad: int
    filters: int
    groups: int
    weights: int
    biases: int
    macs: int

    @property
    def params(self) -> int:
        return self.weights + self.biases

    def __str__(self) -> str:
        (h1, w1, d1), (h2, w2, d2) = self.input, self.output
        f = self.kernel
        per = f"{f}*{f}*{d1 // self.groups}"
        return "\n".join([
            f"input   {h1}x{w1}x{d1}",
            f"output  {h2}x{w2}x{d2}   (W2 = ({w1} - {f} + 2*{self.pad})/{self.stride} + 1 = {w2})",
            f"params  {self.params:,}   (({per})*{self.filters} weights + {self.biases} biases)",
            f"MACs    {self.macs:,}   ({h2}*{w2}*{d2} outputs x {per} = {self.macs / 1e6:.2f} M)",
        ])


def conv_layer(input_hwc: tuple[int, int, int], kernel: int, stride: int = 1, pad: int = 0,
               filters: int = 1, dilation: int = 1, groups: int = 1, bias: bool = True) -> ConvResult:
    """Output volume, parameters (F*F*D1/groups)*K + K and MACs of one conv layer."""
    if len(input_hwc) != 3:
        raise ConfigError(f"input must be H x W x D, got {input_hwc!r}")
    h, w, d = input_hwc
    _positive(height=h, width=w, depth=d, filters=filters, groups=groups)
    if d % groups or filters % groups:
        raise ConfigError(f"groups={groups} must divide input depth {d} and filters {filters}")
    h2 = conv_output_size(h, kernel, stride, pad, dilation)
    w2 = conv_output_size(w, kernel, stride, pad, dilation)
    weights = kernel * kernel * (d // groups) * filters
    return ConvResult((h, w, d), (h2, w2, filters), kernel, stride, pad, filters, groups, weights,
                      filters if bias else 0, h2 * w2 * filters * kernel * kernel * (d // groups))


@dataclass(frozen=True)
class StackResult:
    kernel: int
    layers: int
    channels: int
    receptive_field: int
    stack_weights: int
    single_weights: int
    stack_nonlinearities: int
    single_nonlinearities: int = 1

    @property
    def savings(self) -> float:
        """Fraction of the single layer's weights the stack saves (0.45 for 3x3x3 vs 7x7)."""
        return 1 - self.stack_weights / self.single_weights

    def __str__(self) -> str:
        r, k, n, c = self.receptive_field, self.kernel, self.layers, self.channels
        return "\n".join([
            f"{n} stacked {k}x{k} convs (stride 1), {c} channels in and out",
            f"receptive field    {r}x{r}   (n(K-1)+1 = {n}*{k - 1}+1)",
            f"weights            {self.stack_weights:,} = {n}*{k * k}*C^2   vs one {r}x{r} layer: "
            f"{self.single_weights:,} = {r * r}*C^2   ({self.savings:.0%} fewer)",
            f"nonlinearities     {self.stack_nonlinearities} vs {self.single_nonlinearities}",
        ])


def conv_stack(kernel: int = 3, layers: int = 3, channels: int = 64) -> StackResult:
    """n stacked KxK stride-1 convs vs one conv with the same receptive field (weights, no biases)."""
    _positive(kernel=kernel, layers=layers, channels=channels)
    rf = layers * (kernel - 1) + 1
    return StackResult(kernel, layers, channels, rf, layers * kernel * kernel * channels * channels,
                       rf * rf * channels * channels, layers)


@dataclass(frozen=True)
class DepthwiseResult:
    kernel: int
    in_channels: int
    out_channels: int
    size: int
    standard_macs: int
    depthwise_macs: int
    pointwise_macs: int
    standard_params: int
    separable_params: int

    @property
    def separable_macs(self) -> int:
        return self.depthwise_macs + self.pointwise_macs

    @property
    def ratio(self) -> float:
        """separable / standard = 1/N + 1/D_K^2 (MobileNets eq. 5)."""
        return self.separable_macs / self.standard_macs

    def __str__(self) -> str:
        k, m, n, f = self.kernel, self.in_channels, self.out_channels, self.size
        return "\n".join([
            f"{k}x{k} conv, M={m} -> N={n} channels on a {f}x{f} map",
            f"standard    D_K^2*M*N*D_F^2            = {self.standard_macs:,} MACs, {self.standard_params:,} weights",
            f"separable   D_K^2*M*D_F^2 + M*N*D_F^2  = {self.depthwise_macs:,} + {self.pointwise_macs:,} = "
            f"{self.separable_macs:,} MACs, {self.separable_params:,} weights",
            f"ratio       1/N + 1/D_K^2 = 1/{n} + 1/{k * k} = {self.ratio:.4f}   ({1 / self.ratio:.1f}x cheaper)",
        ])


def depthwise_cost(kernel: int = 3, in_channels: int = 512, out_channels: int = 512, size: int = 14) -> DepthwiseResult:
    """Standard vs depthwise-separable convolution cost (stride 1, 'same' padding, no biases)."""
    _positive(kernel=kernel, in_channels=in_channels, out_channels=out_channels, size=size)
    k2, m, n, f2 = kernel * kernel, in_channels, out_channels, size * size
    return DepthwiseResult(kernel, m, n, size, k2 * m * n * f2, k2 * m * f2, m * n * f2, k2 * m * n, k2 * m + m * n)


@dataclass(frozen=True)
class BottleneckResult:
    style: str
    in_channels: int
    mid_channels: int
    out_channels: int
    kernel: int
    size: int
    plain_macs: int
    bottleneck_macs: int
    plain_params: int
    bottleneck_params: int
    plain: str
    bottleneck: str

    @property
    def ratio(self) -> float:
        return self.bottleneck_macs / self.plain_macs

    def __str__(self) -> str:
        return "\n".join([
            f"{self.style} bottleneck on a {self.size}x{self.size} map",
            f"plain       {self.plain}: {self.plain_macs:,} MACs, {self.plain_params:,} weights",
            f"bottleneck  {self.bottleneck}: {self.bottleneck_macs:,} MACs, {self.bottleneck_params:,} weights",
            f"ratio       {self.ratio:.4f}   ({1 / self.ratio:.1f}x fewer MACs)",
        ])


# The lectures' worked examples, the defaults of each style: GoogLeNet's 28x28x192 -> 5x5x32 branch with a
# 16-channel reduction (Szegedy et al. 2015, Table 1, inception (3a)); ResNet's 256-d bottleneck (He et al.
# 2016, Fig. 5).
BOTTLENECK_EXAMPLES = {
    "googlenet": dict(in_channels=192, mid_channels=16, out_channels=32, kernel=5, size=28),
    "resnet": dict(in_channels=256, mid_channels=64, out_channels=256, kernel=3, size=56),
}


def bottleneck_cost(in_channels: int = 192, mid_channels: int = 16, out_channels: int = 32, kernel: int = 5,
                    size: int = 28, style: str = "googlenet") -> BottleneckResult:
    """Savings of 1x1 channel reductions (stride 1, 'same' padding, no biases).

    ``style="googlenet"``: KxK conv in->out vs 1x1 in->mid then KxK mid->out (Szegedy et al. 2015, §4).
    ``style="resnet"``: two KxK convs in->out (out->out) vs 1x1 in->mid, KxK mid->mid, 1x1 mid->out
    (He et al. 2016, Fig. 5: 256-d input, 64-d bottleneck).
    """
    _positive(in_channels=in_channels, mid_channels=mid_channels, out_channels=out_channels,
              kernel=kernel, size=size)
    k2, a, m, b, f2 = kernel * kernel, in_channels, mid_channels, out_channels, size * size
    if style == "googlenet":
        plain_w = k2 * a * b
        bott_w = a * m + k2 * m * b
        plain = f"{kernel}x{kernel} conv {a}->{b}"
        bott = f"1x1 {a}->{m}, {kernel}x{kernel} {m}->{b}"
    elif style == "resnet":
        plain_w = k2 * a * b + k2 * b * b
        bott_w = a * m + k2 * m * m + m * b
        plain = f"two {kernel}x{kernel} convs {a}->{b}->{b}"
        bott = f"1x1 {a}->{m}, {kernel}x{kernel} {m}->{m}, 1x1 {m}->{b}"
    else:
        raise ConfigError(f"style must be 'googlenet' or 'resnet', got {style!r}")
    return BottleneckResult(style, a, m, b, kernel, size, plain_w * f2, bott_w * f2, plain_w, bott_w, plain, bott)
