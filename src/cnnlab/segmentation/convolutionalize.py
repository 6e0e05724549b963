"""Convolutionalization (Long, Shelhamer & Darrell, CVPR 2015, §3.1, Fig. 2): a classifier's fully
connected layers "can also be viewed as convolutions with kernels that cover their entire input
regions". A ``Linear(C*h*w, n)`` reading an ``h x w`` map becomes ``Conv2d(C, n, (h, w))`` with the
same weights (AlexNet/VGG fc6 -> 7x7 / 6x6 conv), later ``Linear(m, n)`` become 1x1 convs. At the
training size the net computes the same numbers; on a larger input it returns a spatial map of class
scores, one per (stride-spaced) window -- the sliding-window classifier, computed in one pass.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from cnnlab.errors import ConfigError

__all__ = ["convolutionalize", "linear_to_conv"]

# Layers of an MLP head that act elementwise, so they work unchanged on [B, C, H, W] maps.
_ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Tanh, nn.Sigmoid,
                nn.Dropout, nn.Identity)


def linear_to_conv(linear: nn.Linear, kernel_size: Sequence[int] = (1, 1), padding: int | Sequence[int] = 0,
                   dilation: int | Sequence[int] = 1) -> nn.Conv2d:
    """``Linear(C*kh*kw, n)`` -> ``Conv2d(C, n, (kh, kw))`` with the same weights; the Linear's inputs
    are read in ``torch.flatten`` order (channel, row, column), as after ``flatten([C, kh, kw])``."""
    kh, kw = kernel_size
    if linear.in_features % (kh * kw):
        raise ConfigError(f"Linear with {linear.in_features} inputs cannot read a {kh}x{kw} map")
    cin = linear.in_features // (kh * kw)
    w = linear.weight
    conv = nn.Conv2d(cin, linear.out_features, (kh, kw), padding=padding, dilation=dilation,
                     bias=linear.bias is not None, device=w.device, dtype=w.dtype)
    with torch.no_grad():
        conv.weight.copy_(w.reshape(linear.out_features, cin, kh, kw))
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    conv.weight.requires_grad_(w.requires_grad)
    return conv


def _split(model: nn.Module) -> tuple[nn.Module, nn.Module | None, list[nn.Module]]:
    """(convolutional body, pooling before the flatten or None, MLP head layers)."""
    if isinstance(model, nn.Sequential):
        layers = list(model)
        flat = [i for i, m in enumerate(layers) if isinstance(m, nn.Flatten)]
        if flat:
            body, head = layers[: flat[0]], layers[flat[0] + 1:]
            pool = body.pop() if body and isinstance(body[-1], nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d) else None
            return nn.Sequential(*body), pool, head
    elif isinstance(getattr(model, "features", None), nn.Module) and isinstance(
            getattr(model, "classifier", None), nn.Sequential) and isinstance(
            getattr(model, "avgpool", None), nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d | nn.Identity):
        pool = None if isinstance(model.avgpool, nn.Identity) else model.avgpool
        return model.features, pool, list(model.classifier)  # AlexNet / VGG (features -> avgpool -> MLP)
    raise ConfigError(
        f"cannot convolutionalize {type(model).__name__}: supported are nets of the form features -> "
        "[adaptive pool] -> flatten -> Linear/activation/dropout layers (AlexNet, VGG: `features`, "
        "`avgpool`, `classifier`; or an nn.Sequential with an nn.Flatten)")


def _input_size(model: nn.Module, input_size: Sequence[int] | None) -> tuple[int, ...]:
    if input_size is not None:
        return tuple(int(s) for s in input_size)
    cfg = getattr(model, "pretrained_cfg", None)
    if cfg:
        return (cfg["in_chans"], cfg["img_size"], cfg["img_size"])
    raise ConfigError("convolutionalize needs input_size=(C, H, W), the size the classifier was built for")


def convolutionalize(model: nn.Module, input_size: Sequence[int] | None = None, padding: int = 0) -> nn.Sequential:
    """The fully convolutional twin of a classifier (§3.1). Returns
    ``Sequential(features, [pool], classifier)`` whose ``classifier`` holds the FC layers as convs;
    the weights are copied, ``model`` is left as is.

    ``input_size`` (C, H, W): the training size, where the head's input map size is known (default:
    ``model.pretrained_cfg``'s). At that size the output is ``model(x)`` as ``[B, K, 1, 1]``; on larger
    inputs it is a ``[B, K, H', W']`` score map. An adaptive pool from ``h_f x w_f`` to ``h x w`` becomes a
    stride-1 pool of window ``k = h_f/h`` followed by a first conv dilated by ``k``, so every output is
    the classifier applied to one window (AlexNet/VGG at 224: ``k = 1``, the pool vanishes).
    ``padding`` pads the first conv (0: "valid", as in the paper).
    """
    from cnnlab.analysis.tracer import trace_module

    body, pool, head = _split(model)
    size = _input_size(model, input_size)
    try:
        shape = trace_module(body, size).output_shape
    except RuntimeError as e:
        raise ConfigError(f"convolutionalize: input {size} does not fit the features: {e}") from None
    if shape is None or len(shape) != 4:
        raise ConfigError(f"convolutionalize: the features give {shape}, not a [B, C, H, W] map")
    fh, fw = shape[-2:]
    kernel, dilation = (fh, fw), (1, 1)
    layers: list[tuple[str, nn.Module]] = [("features", copy.deepcopy(body))]
    if pool is not None:
        out = pool.output_size if isinstance(pool.output_size, tuple) else (pool.output_size,) * 2
        oh, ow = (fh if out[0] is None else out[0]), (fw if out[1] is None else out[1])
        if fh % oh or fw % ow:
            raise ConfigError(f"convolutionalize: the adaptive pool maps {fh}x{fw} to {oh}x{ow}, which is not a "
                              "fixed window; pick an input_size whose feature map is a multiple of it")
        window = (fh // oh, fw // ow)
        if window != (1, 1):
            pool_cls = nn.AvgPool2d if isinstance(pool, nn.AdaptiveAvgPool2d) else nn.MaxPool2d
            layers.append(("pool", pool_cls(window, stride=1)))
        kernel, dilation = (oh, ow), window
    convs: list[nn.Module] = []
    first = True
    for m in head:
        if isinstance(m, nn.Linear):
            conv = linear_to_conv(m, kernel if first else (1, 1), padding if first else 0,
                                  dilation if first else 1)
            if first and conv.in_channels != shape[1]:
                raise ConfigError(f"convolutionalize: the first Linear reads {m.in_features} features, the "
                                  f"features give {shape[1]}x{kernel[0]}x{kernel[1]} at input {size}")
            convs.append(conv)
            first = False
        elif isinstance(m, _ELEMENTWISE):
            convs.append(copy.deepcopy(m))
        else:
            raise ConfigError(f"convolutionalize: head layer {type(m).__name__} is not Linear or elementwise")
    if first:
        raise ConfigError("convolutionalize: the head has no Linear layer")
    layers.append(("classifier", nn.Sequential(*convs)))
    net = nn.Sequential(OrderedDict(layers))
    net.train(model.training)
    return net
