"""VGG (Simonyan & Zisserman 2015, Table 1-2) and its small-input variant."""

import pytest
import torch
from helpers import meta_model, n_params

import cnnlab


@pytest.mark.parametrize("name, weight_layers", [("vgg11", 11), ("vgg13", 13), ("vgg16", 16), ("vgg19", 19)])
def test_depth_counts_weight_layers_of_table_1(name, weight_layers):
    model = meta_model(name)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    fcs = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(convs) + len(fcs) == weight_layers
    assert all(c.kernel_size == (3, 3) and c.stride == (1, 1) and c.padding == (1, 1) for c in convs)


@pytest.mark.parametrize("name, millions", [("vgg11", 133), ("vgg13", 133), ("vgg16", 138), ("vgg19", 144)])
def test_parameter_counts_of_table_2(name, millions):
    assert round(n_params(meta_model(name)) / 1e6) == millions


def test_vgg16_split_between_convolutions_and_classifier():
    model = meta_model("vgg16")
    assert n_params(model.features) == 14_714_688
    assert n_params(model.classifier) == 123_642_856


def test_bn_variants_add_one_batchnorm_per_conv():
    model = meta_model("vgg16_bn")
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 13
    assert n_params(model) - n_params(meta_model("vgg16")) == 2 * sum(b.num_features for b in bns)


def test_small_variant_keeps_the_convolutions_and_drops_the_fifth_pool():
    big = cnnlab.create_model("vgg16", in_chans=1).state_dict()
    small_model = cnnlab.create_model("vgg16", in_chans=1, img_size=28, num_classes=10)
    small = small_model.state_dict()
    assert {k: v.shape for k, v in big.items() if k.startswith("features")} == {
        k: v.shape for k, v in small.items() if k.startswith("features")}
    pools = [m for m in small_model.features if isinstance(m, torch.nn.MaxPool2d)]
    assert len(pools) == 4
    assert small_model.classifier[0].in_features == 512
    assert n_params(small_model) == (14_714_688 - 2 * 64 * 9 + (512 * 4096 + 4096) + (4096 * 4096 + 4096)
                                     + 4096 * 10 + 10)
    with torch.inference_mode():
        assert small_model.eval().forward_features(torch.randn(1, 1, 28, 28)).shape == (1, 512, 1, 1)
        assert small_model.forward_features(torch.randn(1, 1, 32, 32)).shape == (1, 512, 2, 2)


def test_torchvision_initialisation():
    model = cnnlab.create_model("vgg11")
    fc = model.classifier[0]
    assert fc.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert (fc.bias == 0).all() and (model.features[0].bias == 0).all()
