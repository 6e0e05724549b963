"""Per-layer gradient norms: how much of the error signal reaches each layer (Glorot & Bengio 2010, §4.2).

``layer_gradient_norms(model, images, labels)`` runs one forward/backward of the cross-entropy loss and
returns, for every conv/linear layer in forward order, the Frobenius norm of its weight gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["layer_gradient_norms"]


def layer_gradient_norms(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                         layer_types: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv2d)) -> list[tuple[str, float]]:
    """``[(layer name, ||dL/dW||_F), ...]`` in the order ``model.named_modules()`` lists the layers
    (input side first for sequential nets). The model's gradients are cleared before and after."""
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    out = [(name, float(m.weight.grad.norm())) for name, m in model.named_modules()
           if isinstance(m, layer_types) and m.weight.grad is not None]
    model.zero_grad(set_to_none=True)
    return out
