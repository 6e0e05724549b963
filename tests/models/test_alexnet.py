"""AlexNet: torchvision layout and the 2012 network (Krizhevsky et al., §3-§5)."""

import pytest
import torch
from helpers import n_params

import cnnlab
from cnnlab.models.alexnet import local_response_norm


def convs(model):
    return [m for m in model.features if isinstance(m, torch.nn.Conv2d)]


def test_original_has_60965224_parameters():
    with torch.device("meta"):
        model = cnnlab.create_model("alexnet_original")
    assert n_params(model) == 60_965_224


def test_original_layer_counts_reflect_the_two_gpu_split():
    with torch.device("meta"):
        model = cnnlab.create_model("alexnet_original")
    counts = [n_params(c) for c in convs(model)]
    # conv2/4/5 see only the 48/192/192 maps on their own GPU; conv3 sees all 256.
    assert counts == [96 * 3 * 121 + 96, 256 * 48 * 25 + 256, 384 * 256 * 9 + 384,
                      384 * 192 * 9 + 384, 256 * 192 * 9 + 256]
    assert [c.groups for c in convs(model)] == [1, 2, 1, 2, 2]
    fcs = [m for m in model.classifier if isinstance(m, torch.nn.Linear)]
    assert [(f.in_features, f.out_features) for f in fcs] == [(9216, 4096), (4096, 4096), (4096, 1000)]


def test_original_spatial_sizes_at_227():
    model = cnnlab.create_model("alexnet_original").eval()
    sizes = []
    x = torch.randn(1, 3, 227, 227)
    with torch.inference_mode():
        for layer in model.features:
            x = layer(x)
            if isinstance(layer, torch.nn.Conv2d | torch.nn.MaxPool2d):
                sizes.append((x.shape[1], x.shape[-1]))
    assert sizes == [(96, 55), (96, 27), (256, 27), (256, 13), (384, 13), (384, 13), (256, 13), (256, 6)]


def test_lrn_follows_section_3_3():
    a = torch.randn(2, 10, 3, 3)
    b = local_response_norm()(a)
    k, n, alpha, beta = 2.0, 5, 1e-4, 0.75
    sq = a.pow(2)
    expected = torch.empty_like(a)
    for i in range(10):
        lo, hi = max(0, i - n // 2), min(9, i + n // 2)
        expected[:, i] = a[:, i] / (k + alpha * sq[:, lo:hi + 1].sum(1)).pow(beta)
    torch.testing.assert_close(b, expected)


def test_original_has_lrn_after_conv1_and_conv2_then_overlapping_pools():
    model = cnnlab.create_model("alexnet_original")
    kinds = [type(m).__name__ for m in model.features]
    assert kinds[:8] == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d",
                         "Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"]
    pools = [m for m in model.features if isinstance(m, torch.nn.MaxPool2d)]
    assert all(p.kernel_size == 3 and p.stride == 2 for p in pools)  # z=3 > s=2 (§3.4)
    assert [m.p for m in model.classifier if isinstance(m, torch.nn.Dropout)] == [0.5, 0.5]


def test_original_initialisation_of_section_5():
    model = cnnlab.create_model("alexnet_original")
    c = convs(model)
    fcs = [m for m in model.classifier if isinstance(m, torch.nn.Linear)]
    assert [bool((m.bias == 1).all()) for m in c + fcs] == [False, True, False, True, True, True, True, False]
    assert c[0].weight.std().item() == pytest.approx(0.01, rel=0.05)


def test_original_default_size_is_227():
    assert cnnlab.models.get_model_info("alexnet_original").default_size == 227


@pytest.mark.parametrize("name, final", [("alexnet", 7), ("alexnet_original", 8)])  # floor / ceil pooling
def test_small_input_variant_keeps_the_layout(name, final):
    big = cnnlab.create_model(name).state_dict()
    small_model = cnnlab.create_model(name, img_size=32)
    small = small_model.state_dict()
    assert list(big) == list(small)
    assert [k for k in big if big[k].shape != small[k].shape] == ["features.0.weight"]
    assert small_model.features[0].kernel_size == (3, 3) and small_model.features[0].stride == (1, 1)
    with torch.inference_mode():
        assert small_model.eval().forward_features(torch.randn(1, 3, 32, 32)).shape[-1] == final


def test_torchvision_alexnet_feature_map_is_6x6_at_224():
    model = cnnlab.create_model("alexnet").eval()
    with torch.inference_mode():
        assert model.forward_features(torch.randn(1, 3, 224, 224)).shape == (1, 256, 6, 6)
        assert model.forward_head(torch.randn(1, 256, 6, 6), pre_logits=True).shape == (1, 4096)
