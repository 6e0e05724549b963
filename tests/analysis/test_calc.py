"""The textbook calculator on the worked examples of the lectures and papers."""

from __future__ import annotations

import pytest

from cnnlab.analysis import bottleneck_cost, conv_layer, conv_output_size, conv_stack, depthwise_cost
from cnnlab.errors import ConfigError


def test_alexnet_conv1():
    # Krizhevsky et al. 2012 / CS231n: 227x227x3, 96 11x11 filters, stride 4 -> 55x55x96.
    r = conv_layer((227, 227, 3), kernel=11, stride=4, pad=0, filters=96)
    assert r.output == (55, 55, 96)
    assert r.params == 34_944 and r.weights == 34_848
    assert r.macs == 55 * 55 * 96 * 11 * 11 * 3 == 105_415_200
    assert "55x55x96" in str(r) and "34,944" in str(r)


def test_cs231n_same_padding_example():
    # CS231n: 32x32x3 input, 10 5x5 filters, stride 1, pad 2 -> 32x32x10, 760 parameters.
    r = conv_layer((32, 32, 3), kernel=5, stride=1, pad=2, filters=10)
    assert r.output == (32, 32, 10) and r.params == 760


def test_non_integer_output_shows_the_arithmetic():
    with pytest.raises(ConfigError, match=r"\(224 - 11\)/4 \+ 1 = 54\.25"):
        conv_output_size(224, 11, 4, 0)
    with pytest.raises(ConfigError):
        conv_layer((224, 224, 3), kernel=11, stride=4, pad=0, filters=96)
    assert conv_output_size(7, 3, 1, 0) == 5 and conv_output_size(7, 3, 2, 0) == 3  # CS231n 7x7 examples
    with pytest.raises(ConfigError, match="not an integer"):
        conv_output_size(7, 3, 3, 0)
    assert conv_output_size(32, 3, 1, 2, dilation=2) == 32
    with pytest.raises(ConfigError):
        conv_output_size(3, 5)
    with pytest.raises(ConfigError):
        conv_layer((32, 32, 3), kernel=3, filters=0)


def test_stack_of_three_3x3():
    # Simonyan & Zisserman 2015, §2.3: three 3x3 = one 7x7 field, 27C^2 vs 49C^2 weights, 3 ReLUs.
    r = conv_stack(kernel=3, layers=3, channels=64)
    assert r.receptive_field == 7
    assert r.stack_weights == 27 * 64 * 64 and r.single_weights == 49 * 64 * 64
    assert r.stack_nonlinearities == 3 and r.single_nonlinearities == 1
    assert conv_stack(3, 2, 1).receptive_field == 5  # two 3x3 = one 5x5


def test_depthwise_ratio():
    # Howard et al. 2017, eq. 5: separable / standard = 1/N + 1/D_K^2.
    r = depthwise_cost(kernel=3, in_channels=512, out_channels=512, size=14)
    assert r.standard_macs == 9 * 512 * 512 * 196
    assert r.separable_macs == 9 * 512 * 196 + 512 * 512 * 196
    assert r.ratio == pytest.approx(1 / 512 + 1 / 9, rel=1e-12)
    assert "1/512 + 1/9" in str(r)


def test_bottlenecks():
    # GoogLeNet inception (3a) 5x5 branch: 28x28x192 -> 32 maps, via a 16-channel 1x1 reduction.
    g = bottleneck_cost(192, 16, 32, kernel=5, size=28, style="googlenet")
    assert g.plain_macs == 28 * 28 * 32 * 5 * 5 * 192 == 120_422_400
    assert g.bottleneck_macs == 28 * 28 * 16 * 192 + 28 * 28 * 32 * 5 * 5 * 16 == 12_443_648
    # ResNet (He et al. 2016, Fig. 5): 1x1 256->64, 3x3 64->64, 1x1 64->256.
    r = bottleneck_cost(256, 64, 256, kernel=3, size=56, style="resnet")
    assert r.bottleneck_params == 256 * 64 + 9 * 64 * 64 + 64 * 256 == 69_632
    assert r.plain_params == 2 * 9 * 256 * 256
    with pytest.raises(ConfigError):
        bottleneck_cost(style="vgg")
