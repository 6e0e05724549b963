"""``cnnlab.inspect``: exact per-layer numbers of the lecture models, formats, instances, odd ops."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.analysis import count_macs, inspect
from cnnlab.analysis.summary import build_meta
from cnnlab.errors import ConfigError, UnknownModelError

# AlexNet as in Krizhevsky et al. 2012 (Fig. 2; two-GPU grouping of conv2/4/5), 227x227 input.
ALEXNET = [  # layer, output (C, H, W) or (features,), params
    ("features.0", (96, 55, 55), 34_944),       # conv1 11x11/4
    ("features.3", (96, 27, 27), 0),            # pool1 3x3/2
    ("features.4", (256, 27, 27), 307_456),     # conv2 5x5, groups 2
    ("features.7", (256, 13, 13), 0),           # pool2
    ("features.8", (384, 13, 13), 885_120),     # conv3
    ("features.10", (384, 13, 13), 663_936),    # conv4, groups 2
    ("features.12", (256, 13, 13), 442_624),    # conv5, groups 2
    ("features.14", (256, 6, 6), 0),            # pool5
    ("classifier.1", (4096,), 37_752_832),      # fc6
    ("classifier.4", (4096,), 16_781_312),      # fc7
    ("classifier.6", (1000,), 4_097_000),       # fc8
]

# VGG-16 (configuration D, Simonyan & Zisserman 2015, Table 1), 224x224 input.
VGG16 = [
    ("features.0", (64, 224, 224), 1_792),      # conv1_1
    ("features.2", (64, 224, 224), 36_928),     # conv1_2
    ("features.4", (64, 112, 112), 0),          # pool1
    ("features.5", (128, 112, 112), 73_856),    # conv2_1
    ("features.10", (256, 56, 56), 295_168),    # conv3_1
    ("features.17", (512, 28, 28), 1_180_160),  # conv4_1
    ("features.28", (512, 14, 14), 2_359_808),  # conv5_3
    ("features.30", (512, 7, 7), 0),            # pool5
    ("classifier.0", (4096,), 102_764_544),     # fc6
    ("classifier.3", (4096,), 16_781_312),      # fc7
    ("classifier.6", (1000,), 4_097_000),       # fc8
]


@pytest.mark.parametrize("name,table,total", [("alexnet_original", ALEXNET, 60_965_224),
                                              ("vgg16", VGG16, 138_357_544)])
def test_lecture_models_layer_by_layer(name, table, total):
    s = inspect(name)
    for layer, shape, params in table:
        row = s.row(layer)
        assert row.output_shape == (1, *shape), layer
        assert row.params == params, layer
    assert s.total_params == total == s.trainable_params


def test_alexnet_conv1_macs_and_fc_share():
    s = inspect("alexnet_original")
    assert s.row("features.0").macs == 55 * 55 * 96 * 11 * 11 * 3
    fc = sum(s.row(n).params for n in ("classifier.1", "classifier.4", "classifier.6"))
    assert fc / s.total_params > 0.9  # the FC layers hold most of AlexNet's parameters


def test_published_mac_totals():
    # torchvision's "GFLOPS" column counts multiply-adds: resnet50 4.09, vgg16 15.47 (model docs).
    assert count_macs("resnet50") == 4_089_184_256
    assert abs(count_macs("vgg16") / 15.47e9 - 1) < 0.01
    # Howard et al. 2017, Table 8: 1.0 MobileNet-224 has 569M mult-adds and 4.2M parameters.
    s = inspect("mobilenet_v1")
    assert abs(s.total_macs / 569e6 - 1) < 0.01
    assert round(s.total_params / 1e6, 1) == 4.2
    assert s.total_flops == 2 * s.total_macs


def test_totals_add_up_and_rows():
    s = inspect("resnet50", depth=None)
    top = [r for r in s.rows if r.depth == 1]
    assert sum(r.macs for r in top) == s.total_macs
    assert sum(r.params for r in top) == s.total_params
    leaves = [r for r in s.rows if r.is_leaf]
    assert sum(r.macs for r in leaves) == s.total_macs
    assert s.row("conv1").jump == 2 and s.row("layer4").jump == 32
    assert s.output_shape == (1, 1000)
    # peak activation memory: at least the largest single activation, at most all of them
    acts = [r.activation_bytes for r in leaves]
    assert max(acts) <= s.peak_activation_bytes <= sum(acts)
    assert s.row("conv1").activation_bytes == 64 * 112 * 112 * 4


def test_built_on_meta_and_flat_in_input_size():
    model, size = build_meta("vgg16")
    assert size == (3, 224, 224)
    assert all(p.is_meta for p in model.parameters())
    big = inspect("vgg16", (3, 1024, 1024))
    assert big.row("features.30").output_shape == (1, 512, 32, 32)
    assert big.total_params == 138_357_544  # the adaptive pool keeps fc6 at 7x7x512 inputs


def test_instance_is_not_touched():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                        nn.Linear(8 * 16 * 16, 10))
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    s = inspect(net, (3, 16, 16))
    assert s.total_params == sum(p.numel() for p in net.parameters())
    assert s.total_macs == 16 * 16 * 8 * 27 + 8 * 16 * 16 * 10
    assert net.training and all(m.training for m in net.modules())  # modes restored
    for k, v in net.state_dict().items():
        assert v.device.type == "cpu" and torch.equal(v, before[k]), k  # incl. num_batches_tracked
    assert s.rows[-1].receptive_field == 3 + 15  # flatten: each output sees every position


class _Odd(nn.Module):
    """Transposed conv, dilation, groups, depthwise, adaptive pooling, shuffle, SE, add, concat."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.dil = nn.Conv2d(16, 16, 3, padding=2, dilation=2, groups=4)
        self.dw = nn.Conv2d(16, 16, 5, padding=2, groups=16)
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(16, 4, 1), nn.ReLU(), nn.Conv2d(4, 16, 1),
                                nn.Sigmoid())
        self.up = nn.ConvTranspose2d(32, 8, 4, stride=2, padding=1)
        self.pool = nn.AdaptiveAvgPool2d((3, 5))
        self.fc = nn.Linear(8 * 15, 7)

    def forward(self, x):
        x = self.stem(x)
        a = self.dil(x)
        b = self.dw(x)
        b = b * self.se(b)
        y = torch.cat([a + x, b], 1)
        n, c, h, w = y.shape
        y = y.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)  # channel shuffle
        y = F.interpolate(self.up(y), scale_factor=0.5, mode="nearest")
        return self.fc(torch.flatten(self.pool(y), 1))


def test_odd_ops_match_a_real_forward_and_fvcore():
    fvcore_nn = pytest.importorskip("fvcore.nn")
    net = _Odd().eval()
    x = torch.randn(1, 3, 40, 40)
    shapes = {}
    def record(name):
        def hook(_m, _i, out):
            shapes.setdefault(name, tuple(out.shape))
        return hook

    hooks = [m.register_forward_hook(record(n)) for n, m in net.named_modules() if n]
    with torch.no_grad():
        y = net(x)
    for h in hooks:
        h.remove()
    s = inspect(net, (3, 40, 40))
    assert s.output_shape == tuple(y.shape)
    for r in s.rows:
        assert r.output_shape == shapes[r.name], r.name
    flops = fvcore_nn.FlopCountAnalysis(net, x)
    flops.unsupported_ops_warnings(False)
    by_op = flops.by_operator()
    assert s.total_macs == by_op["conv"] + by_op["linear"]
    # transposed conv: in_numel * C_out/groups * k^2
    assert s.row("up").macs == 32 * 20 * 20 * 8 * 16
    assert s.row("dil").receptive_field == 3 + 4 * 2  # k'=5 at jump 2
    assert s.row("up").jump == 1


def test_formats():
    s = inspect("alexnet_original", depth=1)
    text = str(s)
    assert "features" in text and "Total params: 60,965,224" in text and "features.0" not in text
    md = s.to_markdown(depth=2)
    assert md.count("\n| ") == 1 + len(s.visible_rows(2)) and "`features.0`" in md
    rows = list(csv.DictReader(io.StringIO(s.to_csv(depth=-1))))
    assert len(rows) == len(s.rows)
    assert rows[1]["layer"] == "features.0" and rows[1]["params"] == "34944" and rows[1]["receptive_field"] == "11"
    data = json.loads(s.to_json(depth=-1))
    assert data["total_params"] == 60_965_224 and data["total_macs"] == s.total_macs
    assert data["rows"][1]["output_shape"] == [1, 96, 55, 55]


def test_builder_callable_and_string_sizes():
    torchvision = pytest.importorskip("torchvision")
    s = inspect(torchvision.models.resnet18, "3x64x64")
    assert s.input_size == (3, 64, 64) and s.total_params == 11_689_512


def test_bad_input():
    with pytest.raises(UnknownModelError):
        inspect("resnet5O")
    with pytest.raises(ConfigError, match="integers"):
        inspect("resnet50", "3xbig")
    with pytest.raises(ConfigError, match="does not fit"):
        inspect(nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(10, 2)), (3, 8, 8))
    with pytest.raises(ConfigError, match="does not fit"):
        inspect(nn.Conv2d(3, 8, 3), (4, 8, 8))
    with pytest.raises(ConfigError, match="too small"):
        inspect(nn.Conv2d(3, 8, 5), (3, 2, 2))


def _zoo():
    import cnnlab

    return cnnlab.list_models()


@pytest.mark.parametrize("name", _zoo())
def test_every_zoo_model(name):
    from cnnlab.models import get_model_info

    info = get_model_info(name)
    s = inspect(name)
    if info.params is not None:
        assert s.total_params == pytest.approx(info.params, rel=info.params_rtol, abs=0)
    assert s.total_macs > 0 and s.output_shape[0] == 1
    assert s.peak_activation_bytes > 0
    leaves = [r for r in s.rows if r.is_leaf]
    assert sum(r.macs for r in leaves) == s.total_macs
    # The deepest feature map: its jump is the product of the strides, so the input side / jump is its
    # side up to what unpadded ("valid") convs trim (LeNet's 5x5 convs: 3 units); its field is at least
    # the jump, and the model's field at least its own. A jump or field that stops accumulating fails here.
    spatial = [r for r in leaves if r.output_shape and len(r.output_shape) == 4 and isinstance(r.jump, int | float)]
    deep = max(spatial, key=lambda r: r.jump)
    assert abs(s.input_size[-1] / deep.jump - deep.output_shape[-1]) <= 3
    assert s.receptive_field >= deep.receptive_field >= deep.jump >= (8 if s.input_size[-1] >= 128 else 4)
