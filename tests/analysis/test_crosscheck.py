"""Cross-check against torchinfo and fvcore (test-only dependencies) on zoo models.

Both run a real forward with real (here: constant) weights; the engine runs none. Asserted:
parameter counts equal; conv/linear MACs equal fvcore's; torchinfo's per-layer conv/linear
mult-adds equal ours plus the bias additions torchinfo also counts; every module's output shape
equals the one torchinfo recorded. Small inputs keep the real forwards cheap.
"""

from __future__ import annotations

import logging
import math
import warnings

import pytest
import torch

import cnnlab
from cnnlab.analysis import inspect
from cnnlab.analysis.summary import build_meta

torchinfo = pytest.importorskip("torchinfo")
fvcore_nn = pytest.importorskip("fvcore.nn")

MODELS = [
    ("alexnet_original", 128), ("vgg16", 96), ("resnet50", 128), ("googlenet", 128),
    ("inception_v3", 160), ("densenet121", 96), ("dpn68", 96), ("se_resnet50", 128),
    ("mobilenet_v1", 128), ("mobilenet_v2", 128), ("shufflenet_v1_g3", 128),
    ("shufflenet_v2_x1_0", 128), ("squeezenet1_0", 128), ("efficientnet_b0", 128),
    ("mnasnet1_0", 128), ("nin", 128), ("lenet5", 32), ("resnet20", 32),
]


def real_model(name: str, chans: int, size: int) -> torch.nn.Module:
    """The zoo model with real CPU tensors. Weights are constants (the counts do not depend on
    them); models with integer buffers (index tables) are built normally."""
    meta, _ = build_meta(name, (chans, size, size))
    if any(not b.is_floating_point() and not n.endswith("num_batches_tracked") for n, b in meta.named_buffers()):
        return cnnlab.create_model(name, in_chans=chans, img_size=size).eval()
    model = meta.to_empty(device="cpu")
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.01)
        for n, b in model.named_buffers():
            b.fill_(1 if n.endswith("running_var") else 0)
    return model.eval()


@pytest.mark.parametrize("name,size", MODELS, ids=[m[0] for m in MODELS])
def test_against_torchinfo_and_fvcore(name, size):
    chans = getattr(cnnlab.get_model_info(name), "in_chans", 3)  # LeNet-5: 1
    s = inspect(name, (chans, size, size))
    model = real_model(name, chans, size)
    x = torch.ones(1, chans, size, size)

    ti = torchinfo.summary(model, input_data=x, verbose=0, depth=100)
    assert s.total_params == ti.total_params == sum(p.numel() for p in model.parameters())

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            flops = fvcore_nn.FlopCountAnalysis(model, x)
            flops.unsupported_ops_warnings(False)
            flops.uncalled_modules_warnings(False)
            by_op = flops.by_operator()
        finally:
            logging.disable(logging.NOTSET)
    fv = sum(v for k, v in by_op.items() if k in ("conv", "linear", "addmm", "matmul", "bmm", "einsum"))
    assert s.total_macs == fv

    names = {id(m): n for n, m in model.named_modules()}
    ours: dict[str, list] = {}
    for r in s.rows:
        ours.setdefault(r.name, []).append(r)  # a module called twice (a shared ReLU) has two rows
    seen: dict[str, int] = {}
    checked = 0
    for layer in ti.summary_list:
        name_ = names.get(id(layer.module))
        if not name_ or name_ not in ours:
            continue
        row = ours[name_][seen.get(name_, 0)]
        seen[name_] = seen.get(name_, 0) + 1
        if isinstance(layer.output_size, list) and layer.output_size and isinstance(layer.output_size[0], int):
            assert list(row.output_shape) == layer.output_size, name_
        if layer.is_leaf_layer and isinstance(layer.module, torch.nn.Conv2d | torch.nn.Linear):
            bias = layer.module.bias
            positions = math.prod(layer.output_size[:1] + layer.output_size[2:])
            extra = bias.numel() * positions if bias is not None else 0
            assert layer.macs == row.macs + extra, name_
            checked += 1
    assert checked > 0
