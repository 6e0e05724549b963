"""1-D loss landscapes with filter-normalised random directions (Li et al. 2018, "Visualizing the Loss
Landscape of Neural Nets", §4): each filter of the random direction is rescaled to the norm of the same
filter of the weights, so nets with different weight scales compare; biases and BN parameters stay put.
Sharpness is read as the loss rise at a fixed distance along such directions (cf. Keskar et al. 2017).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["filter_normalized_direction", "loss_along_direction"]


def filter_normalized_direction(model: nn.Module, generator: torch.Generator) -> list[torch.Tensor]:
    """One Gaussian direction per parameter, each output filter (row) scaled to the weight filter's norm;
    zero for 1-D parameters (biases, BN)."""
    out = []
    for p in model.parameters():
        if p.dim() <= 1:
            out.append(torch.zeros_like(p))
            continue
        d = torch.randn(p.shape, generator=generator, dtype=p.dtype)
        w_norm = p.detach().flatten(1).norm(dim=1).view(-1, *[1] * (p.dim() - 1))
        d_norm = d.flatten(1).norm(dim=1).view(-1, *[1] * (p.dim() - 1))
        out.append(d * w_norm / (d_norm + 1e-12))
    return out


@torch.no_grad()
def loss_along_direction(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                         direction: Sequence[torch.Tensor], alphas: Sequence[float],
                         batch_size: int = 1000) -> list[float]:
    """Mean cross-entropy of ``model`` (eval mode) with weights ``w + alpha * direction``, for each alpha;
    the weights are restored afterwards."""
    model.eval()
    params = list(model.parameters())
    original = [p.detach().clone() for p in params]
    losses = []
    try:
        for alpha in alphas:
            for p, w, d in zip(params, original, direction, strict=True):
                p.copy_(w + alpha * d)
            total = sum(float(F.cross_entropy(model(images[i:i + batch_size]), labels[i:i + batch_size],
                                              reduction="sum")) for i in range(0, len(images), batch_size))
            losses.append(total / len(images))
    finally:
        for p, w in zip(params, original, strict=True):
            p.copy_(w)
    return losses
