"""LeNet-5 against LeCun et al. 1998 (§II.B, Table I, Appendix A)."""

import math

import pytest
import torch
from helpers import n_params

import cnnlab
from cnnlab.models.lenet import C3_TABLE, PartialConv2d, ScaledTanh, Subsampling


def test_lenet5_has_the_papers_60850_parameters():
    model = cnnlab.create_model("lenet5", num_classes=10, in_chans=1)
    assert n_params(model) == 60_850


@pytest.mark.parametrize("layer, count", [
    ("c1", 6 * (25 + 1)), ("s2", 6 * 2), ("c3", 1_516), ("s4", 16 * 2),
    ("c5", 120 * (16 * 25 + 1)), ("f6", 84 * 121), ("output", 10 * 85),
])
def test_lenet5_layer_parameter_counts(layer, count):
    model = cnnlab.create_model("lenet5", num_classes=10, in_chans=1)
    assert n_params(model.get_submodule(layer)) == count


def test_lenet5_modern_has_61706_parameters_and_a_full_c3():
    model = cnnlab.create_model("lenet5_modern", num_classes=10, in_chans=1)
    assert n_params(model) == 61_706
    assert isinstance(model.c3, torch.nn.Conv2d) and model.c3.groups == 1
    assert isinstance(model.s2, torch.nn.MaxPool2d)


def test_c3_connections_are_table_1():
    c3 = PartialConv2d(C3_TABLE, 6, 5)
    torch.nn.init.ones_(c3.weight)
    connected = c3.full_weight().sum(dim=(2, 3)) != 0  # (16 C3 maps, 6 S2 maps)
    assert connected.sum() == 60
    # Table I, row by row (the S2 map), columns = C3 maps marked X.
    rows = {0: {0, 4, 5, 6, 9, 10, 11, 12, 14, 15}, 1: {0, 1, 5, 6, 7, 10, 11, 12, 13, 15},
            2: {0, 1, 2, 6, 7, 8, 11, 13, 14, 15}, 3: {1, 2, 3, 6, 7, 8, 9, 12, 14, 15},
            4: {2, 3, 4, 7, 8, 9, 10, 12, 13, 15}, 5: {3, 4, 5, 8, 9, 10, 11, 13, 14, 15}}
    for s2_map, c3_maps in rows.items():
        assert set(torch.nonzero(connected[:, s2_map]).flatten().tolist()) == c3_maps


def test_c3_equals_a_masked_dense_convolution():
    c3 = PartialConv2d(C3_TABLE, 6, 5)
    torch.nn.init.normal_(c3.weight)
    torch.nn.init.normal_(c3.bias)
    x = torch.randn(2, 6, 14, 14)
    dense = torch.nn.functional.conv2d(x, c3.full_weight(), c3.bias)
    torch.testing.assert_close(c3(x), dense)
    # an S2 map not in Table I's column for C3 map 0 ({0, 1, 2}) does not reach it
    x2 = x.clone()
    x2[:, 3:] += 1.0
    torch.testing.assert_close(c3(x2)[:, 0], c3(x)[:, 0])


def test_subsampling_is_coefficient_times_block_sum_plus_bias():
    s = Subsampling(2)
    with torch.no_grad():
        s.weight.copy_(torch.tensor([0.5, -2.0]))
        s.bias.copy_(torch.tensor([1.0, 3.0]))
    x = torch.arange(32, dtype=torch.float).view(1, 2, 4, 4)
    y = s(x)
    assert y.shape == (1, 2, 2, 2)
    block = x[0, 1, :2, 2:].sum()  # channel 1, top-right 2x2 block
    assert y[0, 1, 0, 1].item() == pytest.approx(-2.0 * block.item() + 3.0)


def test_scaled_tanh_constants_of_appendix_a():
    f = ScaledTanh()
    x = torch.tensor([1.0, -1.0, 0.0, 100.0])
    y = f(x)
    assert y[0].item() == pytest.approx(1.0, abs=1e-4)  # A and S chosen so that f(1) = 1
    assert y[1].item() == pytest.approx(-1.0, abs=1e-4)
    assert y[3].item() == pytest.approx(1.7159)
    assert (1.7159 * math.tanh(2 / 3)) == pytest.approx(y[0].item())


@pytest.mark.parametrize("size, in_chans", [(32, 1), (28, 1)])
def test_stage_shapes_follow_figure_2(size, in_chans):
    model = cnnlab.create_model("lenet5", num_classes=10, in_chans=in_chans, img_size=size).eval()
    x = model.pad(torch.randn(1, in_chans, size, size))
    assert x.shape[-1] == 32  # MNIST's 28x28 is padded to 32x32 (§III.A)
    c1 = model.c1(x)
    s2 = model.s2(c1)
    c3 = model.c3(s2)
    s4 = model.s4(c3)
    assert (c1.shape[1:], s2.shape[1:], c3.shape[1:], s4.shape[1:]) == (
        (6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5))
    assert model.forward_features(torch.randn(1, in_chans, size, size)).shape == (1, 120, 1, 1)


def test_large_inputs_are_pooled_to_the_5x5_c5_input():
    model = cnnlab.create_model("lenet5", num_classes=10, in_chans=3, img_size=224).eval()
    assert isinstance(model.pad, torch.nn.Identity)
    with torch.inference_mode():
        assert model.forward_features(torch.randn(1, 3, 224, 224)).shape == (1, 120, 1, 1)


def test_initialisation_follows_appendix_a():
    model = cnnlab.create_model("lenet5", num_classes=10, in_chans=1)
    assert model.c1.weight.abs().max() <= 2.4 / 25
    assert model.c5.weight.abs().max() <= 2.4 / 400
    # C3 kernels of maps with 3 inputs (fan-in 75) are bounded by 2.4/75
    k3 = model.c3.weight[: 6 * 3]
    assert k3.abs().max() <= 2.4 / 75 and k3.abs().max() > 2.4 / 100


def test_defaults_are_the_papers_32x32x1_ten_classes():
    model = cnnlab.create_model("lenet5")
    assert model.pretrained_cfg["img_size"] == 32
    assert model.pretrained_cfg["in_chans"] == 1 and model.output.out_features == 10
    assert model.pretrained_cfg["default_size"] == 32
