"""Helpers shared by the model tests (imported as ``from helpers import ...``; pytest puts this folder on sys.path)."""

import warnings

import torch
import torchvision
from torch import nn

import cnnlab


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def meta_model(name: str, **kwargs) -> nn.Module:
    """``cnnlab.create_model(name, **kwargs)`` on the meta device: shapes only, no memory, no init cost."""
    with torch.device("meta"):
        return cnnlab.create_model(name, **kwargs)


def count_mult_adds(model: nn.Module, size: int = 224) -> int:
    """Multiply-adds of the conv and linear layers for one size x size image (the papers' "FLOPs").

    Counted by forward hooks on meta tensors (no compute), independently of ``cnnlab.count_macs``.
    """
    total = 0

    def conv(m, _, out):
        nonlocal total
        total += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear(m, _, out):
        nonlocal total
        total += m.in_features * m.out_features

    hooks = [m.register_forward_hook(conv if isinstance(m, nn.Conv2d) else linear)
             for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()(torch.empty(1, 3, size, size, device="meta"))
    for h in hooks:
        h.remove()
    return total


def assert_transform_input_matches_torchvision(name: str, size: int) -> None:
    """With ``transform_input=True`` and torchvision's weights, ``name`` gives torchvision's logits."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tv = getattr(torchvision.models, name)(weights=None, aux_logits=True, transform_input=True,
                                               init_weights=True).eval()
    ours = cnnlab.create_model(name, transform_input=True).eval()
    ours.load_state_dict(tv.state_dict())
    x = torch.randn(1, 3, size, size)
    with torch.inference_mode():
        torch.testing.assert_close(ours(x), tv(x), rtol=1e-5, atol=1e-5)
