"""Registry-wide tests (timm style): every registered model is tested the moment it is registered."""

import pytest
import torch
import torchvision
from helpers import assert_same_function, calibrate, meta_model, n_params

import cnnlab
from cnnlab.errors import ConfigError, UnknownModelError
from cnnlab.models import AuxOutputs, get_model_info
from cnnlab.models.mnasnet import MBConv
from cnnlab.models.mobilenet import InvertedResidual

ALL = cnnlab.list_models(task="classification")  # segmentation models: tests/segmentation
TORCHVISION_TWINS = [n for n in ALL if get_model_info(n).torchvision]
# The 224x224 forward+backward of the heaviest nets is the slow group.
HEAVY = {"vgg16", "vgg19", "vgg16_bn", "vgg19_bn", "vgg13", "vgg13_bn", "wide_resnet101_2", "resnext101_32x8d",
         "resnet152", "wrn28_10", "densenet161", "efficientnet_b7", "efficientnet_b6", "efficientnet_b5", "dpn92"}


def logits_of(out):
    return out.logits if isinstance(out, AuxOutputs) else out


def test_zoo_is_complete():
    expected = (
        ["lenet5", "lenet5_modern", "alexnet", "alexnet_original", "nin", "googlenet", "inception_v3"]
        + [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]
        + [f"resnet{d}" for d in (18, 34, 50, 101, 152, 20, 32, 44, 56, 110)]
        + ["resnext50_32x4d", "resnext101_32x8d", "wide_resnet50_2", "wide_resnet101_2", "wrn28_10"]
        + [f"densenet{d}" for d in (121, 161, 169, 201)] + ["densenet_bc_100_12", "dpn68", "dpn92"]
        + ["se_resnet50", "se_resnext50_32x4d", "mobilenet_v1", "mobilenet_v2"]
        + [f"shufflenet_v1_g{g}" for g in (1, 2, 3, 4, 8)]
        + [f"shufflenet_v2_x{w}" for w in ("0_5", "1_0", "1_5", "2_0")]
        + [f"efficientnet_b{i}" for i in range(8)] + [f"efficientnet_lite{i}" for i in range(3)]
        + ["squeezenet1_0", "squeezenet1_1", "mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3"]
    )
    missing = sorted(set(expected) - set(ALL))
    assert not missing, f"not registered: {missing}"


def test_list_models_filters_with_fnmatch():
    assert cnnlab.list_models("resnet*") == sorted(n for n in ALL if n.startswith("resnet"))
    assert "resnet50" in cnnlab.list_models("resnet*")
    assert cnnlab.list_models("no_such_*") == []


@pytest.mark.parametrize("name", ALL)
def test_param_count_matches_reference(name):
    info = get_model_info(name)
    assert info.params is not None, f"{name} has no reference parameter count"
    with torch.device("meta"):
        model = cnnlab.create_model(name)
    got = n_params(model)
    if info.params_rtol == 0:
        assert got == info.params, f"{name}: {got:,} params, reference {info.params:,} ({info.params_source})"
    else:
        assert abs(got - info.params) <= info.params_rtol * info.params, (
            f"{name}: {got:,} params, reference {info.params:,} ±{info.params_rtol:.0%} ({info.params_source})")


@pytest.mark.parametrize("name", TORCHVISION_TWINS)
def test_torchvision_parity(name):
    """Same state_dict keys and shapes; torchvision's weights load strictly; same function (eval).

    The reference first gets random norm affines, real BatchNorm statistics and O(1) logits
    (helpers.calibrate): on torchvision's fresh init EfficientNet's logits are ~1e-14 and GoogLeNet's
    do not depend on the input, so a plain comparison would pass for any architecture.
    """
    info = get_model_info(name)
    size = 75 if name == "inception_v3" else 64  # torchvision's minimum / a size every other twin takes
    tv = calibrate(getattr(torchvision.models, info.torchvision)(weights=None), size)
    ours = meta_model(name)  # no init cost: every tensor comes from torchvision's state_dict
    ours_sd, tv_sd = ours.state_dict(), tv.state_dict()
    assert list(ours_sd) == list(tv_sd) or set(ours_sd) == set(tv_sd)
    assert {k: v.shape for k, v in ours_sd.items()} == {k: v.shape for k, v in tv_sd.items()}
    ours.load_state_dict(tv_sd, strict=True, assign=True)
    assert_same_function(ours, tv, size)


def _swap(model, old, new):
    for parent in list(model.modules()):
        for child_name, child in parent.named_children():
            if isinstance(child, old):
                setattr(parent, child_name, new())


def _no_skip(model, cls, flag):
    for m in model.modules():
        if isinstance(m, cls):
            setattr(m, flag, False)


@pytest.mark.parametrize("name, plant", [
    ("efficientnet_b0", lambda m: _swap(m, torch.nn.SiLU, torch.nn.ReLU)),
    ("mobilenet_v2", lambda m: _no_skip(m, InvertedResidual, "use_res_connect")),
    ("mnasnet0_5", lambda m: _no_skip(m, MBConv, "apply_residual")),
])
def test_parity_check_catches_planted_bugs(name, plant):
    """The comparison above fails for a swapped activation or a removed skip connection."""
    tv = calibrate(getattr(torchvision.models, name)(weights=None), 64)
    ours = meta_model(name)
    ours.load_state_dict(tv.state_dict(), strict=True, assign=True)
    assert_same_function(ours, tv, 64)
    plant(ours)
    with pytest.raises(AssertionError, match="not close"):
        assert_same_function(ours, tv, 64)


def _forward_backward(name, in_chans, size, num_classes=10, batch=2):
    model = cnnlab.create_model(name, num_classes=num_classes, in_chans=in_chans, img_size=size).train()
    x = torch.randn(batch, in_chans, size, size)
    out = model(x)
    logits = logits_of(out)
    assert logits.shape == (batch, num_classes)
    loss = logits.sum() + (sum(a.sum() for a in out.aux) if isinstance(out, AuxOutputs) else 0)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads), f"{name}: parameters without gradient"
    assert all(torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.inference_mode():
        assert model(x[:1]).shape == (1, num_classes)


@pytest.mark.parametrize("name", ALL)
def test_forward_backward_28x28x1(name):
    _forward_backward(name, 1, 28)


@pytest.mark.parametrize("name", ALL)
def test_forward_backward_32x32x3(name):
    _forward_backward(name, 3, 32)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in ALL])
def test_forward_backward_224x224x3(name):
    # Batch 1 keeps the 224 group affordable on 2 cores; BN still sees 7x7 (or larger) maps --
    # except Inception-v3's auxiliary head, whose BN sees 1x1 maps at 224 and needs batch 2.
    _forward_backward(name, 3, 224, num_classes=1000, batch=2 if name == "inception_v3" else 1)


# Channels of the last feature map where an MLP head follows it (so pre_logits is wider): AlexNet's conv5
# (Krizhevsky et al. 2012, Fig. 2), VGG's last block (Simonyan & Zisserman 2015, Table 1), LeNet-5's C5.
MLP_HEAD_CHANNELS = {"alexnet": 256, "alexnet_original": 256, "lenet5": 120, "lenet5_modern": 120}
MLP_HEAD_CHANNELS |= {n: 512 for n in ALL if n.startswith("vgg")}


def _in_width(layer):
    return layer.in_features if isinstance(layer, torch.nn.Linear) else layer.in_channels


@pytest.mark.parametrize("name", ALL)
def test_model_interface(name):
    """Feature map and pre_logits widths match the classifier (and torchvision's); logits = classifier(pre_logits);
    reset_classifier changes the output width."""
    model = cnnlab.create_model(name, num_classes=7, in_chans=3, img_size=32).eval()
    cfg, info = model.pretrained_cfg, get_model_info(name)
    assert cfg["name"] == name and cfg["num_classes"] == 7
    classifier = model.get_classifier()
    assert classifier is model.get_submodule(cfg["classifier"])
    width = _in_width(classifier)
    if info.torchvision:  # an independent source for the width: torchvision's twin (on meta, no init cost)
        with torch.device("meta"):
            tv = getattr(torchvision.models, info.torchvision)(weights=None, **info.tv_weight_kwargs)
        assert width == _in_width(tv.get_submodule(cfg["classifier"]))
    x = torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        feats = model.forward_features(x)
        assert feats.dim() == 4 and feats.shape[:2] == (1, MLP_HEAD_CHANNELS.get(name, width))
        pre = model.forward_head(feats, pre_logits=True)
        assert pre.shape == (1, width)
        if isinstance(classifier, torch.nn.Linear):  # nothing between pre_logits and the classifier, nor after
            scale = getattr(model, "logit_scale", 1.0)  # FastNet's output temperature (test_fastnet.py)
            torch.testing.assert_close(model(x), scale * classifier(pre))
        model.reset_classifier(3)
        assert model(x).shape == (1, 3)
        model.reset_classifier(0)
        assert model(x).shape == (1, width)
    assert model.get_submodule(cfg["first_conv"]).in_channels == 3


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UnknownModelError, match="resnet50"):
        cnnlab.create_model("resnet5O")
    with pytest.raises(ValueError, match="did you mean"):
        cnnlab.create_model("vgg_16")


@pytest.mark.parametrize("kwargs, match", [
    (dict(in_chans=0), "in_chans"),
    (dict(num_classes=-1), "num_classes"),
    (dict(img_size=8), "too small"),
    (dict(img_size="224"), "img_size"),
])
def test_impossible_settings_are_clear_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        cnnlab.create_model("resnet18", **kwargs)


@pytest.mark.parametrize("name", cnnlab.list_models())
def test_builder_signature_agrees_with_the_registry(name):
    """Calling a builder directly gives the registry's defaults (EfficientNet-B1 is built for 240, not 224)."""
    import inspect

    info = get_model_info(name)
    params = inspect.signature(info.fn.__wrapped__).parameters
    defaults = {k: params[k].default for k in ("num_classes", "in_chans", "img_size")}
    assert defaults == {"num_classes": info.num_classes, "in_chans": info.in_chans, "img_size": info.default_size}
