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
    """With ``transform_input=True`` and torchvision's weights, ``name`` computes torchvision's function."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tv = getattr(torchvision.models, name)(weights=None, aux_logits=True, transform_input=True,
                                               init_weights=True)
    calibrate(tv, size)
    ours = meta_model(name, transform_input=True)
    ours.load_state_dict(tv.state_dict(), strict=True, assign=True)
    assert_same_function(ours, tv, size)


# --- output comparison that can fail ------------------------------------------------------------------------
# On a fresh initialisation many nets compute almost nothing: BatchNorm's default running statistics
# (mean 0, var 1) are nearly an identity, so activations shrink layer by layer and EfficientNet's logits come
# out ~1e-14, MobileNet-v2's ~1e-9, and GoogLeNet's equal the final bias whatever the input. A comparison
# with atol=1e-5 then passes for any architecture. These helpers make the reference compute something.

NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def informative_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """``n`` smooth random images (8x8 noise, upsampled) with per-image brightness and contrast, so that
    globally pooled features -- and hence the logits -- differ from image to image (i.i.d. pixel noise
    averages out in the pool)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.randn(n, 3, 8, 8, generator=g)
    x = nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return x * (0.5 + torch.rand(n, 1, 1, 1, generator=g)) + 0.5 * torch.randn(n, 3, 1, 1, generator=g)


@torch.no_grad()
def calibrate(model: nn.Module, size: int, *, batches: int = 2, batch_size: int = 8, seed: int = 0) -> nn.Module:
    """Give every norm layer random affine weights and real batch statistics; returns ``model`` in eval mode.

    Affine: weight ~ U(0.5, 1.5), bias ~ N(0, 0.2^2). Statistics: the cumulative average (``momentum=None``)
    over ``batches`` forward passes of :func:`informative_images`, with only the norm layers in train mode
    (no dropout, stochastic depth or auxiliary heads). The classifier (the last Linear/Conv2d defined, as in
    every torchvision net) is then rescaled so that the median image's logits have unit standard deviation
    (EfficientNet-B4's would be ~500, AlexNet's ~0.01).
    """
    g = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, NORMS)]
    for m in norms:
        if getattr(m, "weight", None) is not None:
            m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
            m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
    bns = [m for m in norms if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    momenta = [m.momentum for m in bns]
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    for i in range(batches if bns else 0):
        model(informative_images(batch_size, size, seed=seed + 1000 + i))
    for m, mom in zip(bns, momenta):
        m.momentum = mom
        m.eval()
    head = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1]  # defined last in tv nets
    std = _logits(model(informative_images(batch_size, size, seed=seed + 2000))).std(1).median()
    head.weight /= std
    if head.bias is not None:
        head.bias /= std
    return model


def _logits(out):
    return out.logits if hasattr(out, "logits") else out


@torch.no_grad()
def assert_same_function(ours: nn.Module, ref: nn.Module, size: int, *, tol: float = 1e-5,
                         seed: int = 1) -> None:
    """``ours(x) == ref(x)`` (eval) on two images, where the check is informative.

    Asserts that ``ref``'s logits are O(1) for each image (std in [1e-2, 1e3]: deep random nets have heavy
    tails) and depend on the input (the two images' logits differ by more than 100x the tolerance), then
    compares each image's logits with ``rtol = tol`` and ``atol = tol * max |logit|``. Call
    :func:`calibrate` on ``ref`` (and load its state_dict into ``ours``) first.
    """
    x = informative_images(2, size, seed=seed)
    want = _logits(ref.eval()(x))
    got = _logits(ours.eval()(x))
    stds = want.std(1)
    assert ((stds >= 1e-2) & (stds <= 1e3)).all(), f"reference logits are not O(1): per-image std {stds.tolist()}"
    scale = want.abs().amax(1)
    spread = (want[0] - want[1]).abs().max().item()
    assert spread > 100 * tol * scale.max(), f"reference logits barely depend on the input ({spread:.3g})"
    for i in range(len(x)):
        torch.testing.assert_close(got[i], want[i], rtol=tol, atol=tol * scale[i].item())
