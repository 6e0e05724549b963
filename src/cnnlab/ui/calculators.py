"""The Calculators tab: the textbook formulas of :mod:`cnnlab.analysis.calc` as small forms.

Each function takes the form's numbers and returns Markdown: the formula, then the worked result
exactly as ``cnnlab calc`` prints it (``str`` of the result object).
"""

from __future__ import annotations

from typing import Any

from cnnlab.analysis import calc

FORMULAS = {
    "conv": "W2 = (W1 - F + 2P)/S + 1,  params = (F·F·D1/groups)·K + K  (CS231n)",
    "stack": "n stacked KxK convs: receptive field n(K-1)+1 with n·K²·C² weights  (VGG, §2.3)",
    "depthwise": "D_K²·M·N·D_F²  vs  D_K²·M·D_F² + M·N·D_F²,  ratio 1/N + 1/D_K²  (MobileNets, eq. 4-5)",
    "bottleneck": "1x1 reduction before the KxK conv  (GoogLeNet §4; ResNet Fig. 5)",
}

def _ints(**values: Any) -> dict[str, Any]:
    """Form numbers arrive as floats; whole ones become ints, the rest are left for calc to reject."""
    return {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in values.items()}


def _markdown(kind: str, result: Any) -> str:
    return f"`{FORMULAS[kind]}`\n\n```\n{result}\n```"


def conv_form(height: float, width: float, depth: float, kernel: float, stride: float, pad: float,
              filters: float, dilation: float = 1, groups: float = 1) -> str:
    """One conv layer: output volume, parameters and MACs (``cnnlab calc conv``)."""
    v = _ints(h=height, w=width, d=depth, kernel=kernel, stride=stride, pad=pad, filters=filters,
              dilation=dilation, groups=groups)
    r = calc.conv_layer((v["h"], v["w"], v["d"]), v["kernel"], v["stride"], v["pad"], v["filters"],
                        dilation=v["dilation"], groups=v["groups"])
    return _markdown("conv", r)


def stack_form(kernel: float, layers: float, channels: float) -> str:
    """A stack of small convs vs one big one (``cnnlab calc stack``)."""
    return _markdown("stack", calc.conv_stack(**_ints(kernel=kernel, layers=layers, channels=channels)))


def depthwise_form(kernel: float, in_channels: float, out_channels: float, size: float) -> str:
    """Depthwise-separable vs standard convolution (``cnnlab calc depthwise``)."""
    v = _ints(kernel=kernel, in_channels=in_channels, out_channels=out_channels, size=size)
    return _markdown("depthwise", calc.depthwise_cost(**v))


def bottleneck_form(style: str, in_channels: float, mid: float, out_channels: float, kernel: float,
                    size: float) -> str:
    """1x1 bottleneck savings, GoogLeNet or ResNet style (``cnnlab calc bottleneck``)."""
    v = _ints(in_channels=in_channels, mid_channels=mid, out_channels=out_channels, kernel=kernel, size=size)
    return _markdown("bottleneck", calc.bottleneck_cost(**v, style=style))
