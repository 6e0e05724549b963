"""Analytic receptive fields (Araujo et al., Distill 2019) vs known values and vs the empirical field.

Empirical field: the input pixels with a nonzero gradient of one output unit. To make "nonzero"
mean "connected", the net is made a positive linear map: conv/linear weights 1/fan_in, norms
identity, activations identity, max pooling replaced by average pooling (max routes the gradient
to one pixel); none of these changes which pixels are connected. The forward stops at the layer
under test, so the check stays cheap.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from cnnlab.analysis import inspect

_IDENTITY = {F.relu, torch.relu, torch.relu_, torch.Tensor.relu_, F.relu6, F.hardtanh, F.hardswish,
             F.silu, F.gelu, F.leaky_relu, F.elu, F.local_response_norm}


class _Linearise(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _IDENTITY:
            return args[0] if args else kwargs["input"]
        if func is F.max_pool2d:
            names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")
            a = dict(zip(names, args[1:]), **kwargs)
            assert a.get("dilation", 1) in (1, (1, 1))
            return F.avg_pool2d(args[0], a["kernel_size"], a.get("stride"), a.get("padding", 0),
                                a.get("ceil_mode", False))
        return func(*args, **kwargs)


class _Stop(Exception):
    pass


def build_uninitialised(name: str, img_size: int) -> torch.nn.Module:
    """A zoo model on the CPU with allocated, never-initialised weights (cheap even for VGG)."""
    from cnnlab.analysis.summary import build_meta

    return build_meta(name, (3, img_size, img_size))[0].to_empty(device="cpu")


def empirical_box(model: torch.nn.Module, layer: str, input_size, unit):
    """(top, left, bottom, right) of the input pixels that reach output ``unit`` (h, w) of ``layer``."""

    def linearise_weights(module, _args):  # only the modules that run before the stop are touched
        with torch.no_grad():
            for pname, p in module.named_parameters(recurse=False):
                if p.dim() >= 2:
                    p.fill_(1.0 / (p.numel() // p.shape[0]))
                else:
                    p.fill_(1.0 if pname == "weight" else 0.0)
            for bname, b in module.named_buffers(recurse=False):
                if bname == "running_mean":
                    b.zero_()
                elif bname == "running_var":
                    b.fill_(1.0)

    model.eval()
    got = {}

    def hook(_m, _i, out):
        got["out"] = out[0] if isinstance(out, tuple) else out
        raise _Stop

    handles = [model.get_submodule(layer).register_forward_hook(hook),
               torch.nn.modules.module.register_module_forward_pre_hook(linearise_weights)]
    x = torch.ones((1, *input_size), requires_grad=True)
    try:
        with _Linearise():
            model(x)
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    out = got["out"]
    out[0, :, unit[0], unit[1]].sum().backward()
    nz = (x.grad[0].abs().sum(0) > 0).nonzero()
    return (nz[:, 0].min().item(), nz[:, 1].min().item(), nz[:, 0].max().item(), nz[:, 1].max().item())


def analytic_box(row, size, unit):
    rf = row.receptive_field if isinstance(row.receptive_field, tuple) else (row.receptive_field,) * 2
    jump = row.jump if isinstance(row.jump, tuple) else (row.jump,) * 2
    c0 = row.rf_center if isinstance(row.rf_center, tuple) else (row.rf_center,) * 2
    lo, hi = [], []
    for r, j, c, i, n in zip(rf, jump, c0, unit, size):
        centre = c + i * j
        lo.append(max(0, int(round(centre - (r - 1) / 2))))
        hi.append(min(n - 1, int(round(centre + (r - 1) / 2))))
    return (lo[0], lo[1], hi[0], hi[1])


def test_known_receptive_fields():
    # Araujo et al. 2019 (Table 1) and the lectures: AlexNet pool5 195; VGG-16 conv5_3 196, pool5 212.
    s = inspect("alexnet_original")
    assert s.input_size == (3, 227, 227)
    assert s.row("features.14").type == "MaxPool2d" and s.row("features.14").receptive_field == 195
    assert s.row("features.14").jump == 32
    v = inspect("vgg16")
    assert v.row("features.28").type == "Conv2d" and v.row("features.28").receptive_field == 196  # conv5_3
    assert v.row("features.30").type == "MaxPool2d" and v.row("features.30").receptive_field == 212  # pool5
    assert v.row("features.30").jump == 32
    assert v.receptive_field == 212


def _dilated_net() -> torch.nn.Module:
    """Dilated 3x3 convs (rates 2 and 4, DeepLab style) around a stride-2 conv: effective kernels 5 and 9."""
    from torch import nn

    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=2, dilation=2), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1),
                         nn.ReLU(), nn.Conv2d(8, 8, 3, padding=4, dilation=4))


def _lite0_tf_same() -> torch.nn.Module:
    """EfficientNet-Lite0 with TF "SAME" padding (Conv2dSame: asymmetric, input-dependent padding)."""
    import cnnlab

    return cnnlab.create_model("efficientnet_lite0", tf_same_padding=True)


# model, input (C, H, W), layer: plain chain, residual add, Inception concat, dense concat,
# dual path, depthwise, channel shuffle, asymmetric 1x7/7x1 kernels, dilated convs, TF-"same" padding.
CASES = [
    ("alexnet_original", (3, 227, 227), "features.14"),
    ("vgg16", (3, 96, 96), "features.16"),
    ("resnet18", (3, 128, 128), "layer2"),
    ("googlenet", (3, 128, 128), "inception3b"),
    ("densenet121", (3, 96, 96), "features.denseblock1"),
    ("dpn68", (3, 96, 96), "features.conv3_2"),
    ("mobilenet_v1", (3, 128, 128), "features.6"),
    ("shufflenet_v2_x1_0", (3, 128, 128), "stage2"),
    ("inception_v3", (3, 160, 160), "Mixed_5b"),
    (_dilated_net, (3, 64, 64), "4"),
    (_lite0_tf_same, (3, 97, 97), "features.3"),  # odd size: SAME pads stride-2 convs unevenly
]


@pytest.mark.parametrize("name,size,layer", CASES, ids=[getattr(c[0], "__name__", c[0]) for c in CASES])
def test_analytic_matches_empirical(name, size, layer):
    row = inspect(name, size).row(layer)
    out_h, out_w = row.output_shape[-2:]
    model = name() if callable(name) else build_uninitialised(name, size[1])
    for unit in ((out_h // 2, out_w // 2), (0, 0)):  # a centre unit, and a corner unit (clipped)
        assert empirical_box(model, layer, size, unit) == analytic_box(row, size[1:], unit), (name, layer, unit)


def test_se_gate_does_not_widen_field():
    # Convention: a broadcast 1x1 gate (squeeze-and-excitation) leaves the local field as is.
    plain, se = inspect("resnet50"), inspect("se_resnet50")
    for layer in ("layer1", "layer2", "layer3", "layer4"):
        assert se.row(layer).receptive_field == plain.row(layer).receptive_field
