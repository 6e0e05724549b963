"""Transposed convolution ("deconvolution", FCN's upsampling) spelled out as zero insertion + convolution.

For ``ConvTranspose2d`` with kernel k, stride s, padding p, output padding a (dilation 1, groups 1):

1. insert ``s - 1`` zeros between neighbouring input pixels (size ``(H - 1) s + 1``);
2. pad ``k - 1 - p`` zeros on every side, plus ``a`` at the bottom/right (negative padding crops);
3. convolve (stride 1) with the kernel flipped in both spatial axes and its in/out channels swapped.

Output size ``(H - 1) s - 2p + k + a`` (Dumoulin & Visin 2016, "A guide to convolution arithmetic",
relationship 14; the ``H_out`` formula of ``torch.nn.ConvTranspose2d``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnlab.errors import ConfigError

__all__ = ["transposed_conv_output_size", "transposed_conv_by_zero_insertion", "zero_insert"]


def transposed_conv_output_size(size: int, kernel: int, stride: int = 1, pad: int = 0, output_pad: int = 0) -> int:
    """``(size - 1) * stride - 2 * pad + kernel + output_pad``."""
    if min(size, kernel, stride) < 1 or pad < 0 or not 0 <= output_pad < stride:
        raise ConfigError(f"need size, kernel, stride >= 1, pad >= 0 and 0 <= output_pad < stride; got size={size} "
                          f"kernel={kernel} stride={stride} pad={pad} output_pad={output_pad}")
    return (size - 1) * stride - 2 * pad + kernel + output_pad


def zero_insert(x: torch.Tensor, stride: int) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, C, (H-1)s+1, (W-1)s+1]`` with ``s - 1`` zeros between neighbouring pixels."""
    b, c, h, w = x.shape
    out = x.new_zeros(b, c, (h - 1) * stride + 1, (w - 1) * stride + 1)
    out[:, :, ::stride, ::stride] = x
    return out


def transposed_conv_by_zero_insertion(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                                      stride: int = 1, pad: int = 0, output_pad: int = 0) -> torch.Tensor:
    """What ``F.conv_transpose2d(x, weight, bias, stride, pad, output_pad)`` computes, via steps 1-3 above.
    ``weight`` is ConvTranspose2d's ``[C_in, C_out, k, k]``."""
    k = weight.shape[-1]
    if weight.shape[-2] != k:
        raise ConfigError(f"square kernels only, got {tuple(weight.shape[-2:])}")
    transposed_conv_output_size(x.shape[-1], k, stride, pad, output_pad)  # validates the settings
    edge = k - 1 - pad
    z = F.pad(zero_insert(x, stride), (edge, edge + output_pad, edge, edge + output_pad))
    return F.conv2d(z, weight.flip(-1, -2).transpose(0, 1), bias)
