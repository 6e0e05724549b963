"""Inspection: per-layer shapes, parameters, MACs, receptive field, memory; calculators; comparisons.

``inspect(model, input_size)`` -> :class:`Summary` (one shape-only pass, nothing allocated);
``count_macs``; the textbook calculator (``conv_output_size``, ``conv_layer``, ``conv_stack``,
``depthwise_cost``, ``bottleneck_cost``); ``compare`` and the ``ball_chart``.
"""

from cnnlab.analysis.calc import (
    bottleneck_cost,
    conv_layer,
    conv_output_size,
    conv_stack,
    depthwise_cost,
)
from cnnlab.analysis.compare import CompareRow, ball_chart, compare, format_compare, published_accuracy
from cnnlab.analysis.summary import LayerRow, Summary, count_macs, inspect

__all__ = [
    "CompareRow",
    "LayerRow",
    "Summary",
    "ball_chart",
    "bottleneck_cost",
    "compare",
    "conv_layer",
    "conv_output_size",
    "conv_stack",
    "count_macs",
    "depthwise_cost",
    "format_compare",
    "inspect",
    "published_accuracy",
]
