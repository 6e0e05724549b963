"""convolutionalize: the same numbers at the training size, a score map (sliding-window classifier) beyond it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.errors import ConfigError
from cnnlab.segmentation import convolutionalize, linear_to_conv


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal up to float error scaled to the output size; the output must be O(1) and input dependent."""
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5 * b.abs().max().item())


def _he_init(model: nn.Module) -> None:
    """Default inits leave AlexNet's logits ~bias (activations die out): He-initialise so they are O(1)."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)


def test_linear_to_conv_reads_flatten_order():
    torch.manual_seed(0)
    lin = nn.Linear(4 * 3 * 2, 5)
    x = torch.randn(2, 4, 3, 2)
    conv = linear_to_conv(lin, (3, 2))
    assert conv.weight.shape == (5, 4, 3, 2)
    _close(conv(x).flatten(1), lin(x.flatten(1)))


def test_alexnet_same_at_training_size_score_map_beyond():
    torch.manual_seed(0)
    model = cnnlab.create_model("alexnet", num_classes=10).eval()
    _he_init(model)
    fcn = convolutionalize(model)
    conv_fc = [m for m in fcn.classifier if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in conv_fc] == [(6, 6), (1, 1), (1, 1)]  # fc6 -> 6x6 conv, the rest 1x1
    assert "pool" not in dict(fcn.named_children())  # 6x6 features: the adaptive pool is the identity
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        ref, out = model(x), fcn(x)
        assert ref.std() > 0.5 and (ref[0] - ref[1]).abs().max() > 0.1  # O(1), input dependent
        assert out.shape == (2, 10, 1, 1)
        _close(out[:, :, 0, 0], ref)
        big = fcn(torch.randn(1, 3, 320, 288))
    # features 320 -> 9, 288 -> 8 (stride 32); fc6 (6x6, valid) -> a 4x3 map of class scores
    assert big.shape == (1, 10, 4, 3)


def test_bn_net_with_pool_window_is_a_sliding_window_classifier():
    """No padding, BN with real statistics, an adaptive pool that averages 2x2 windows: the map at
    (i, j) is the classifier on the input window at (4i, 4j)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d((2, 2)), nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 4),
    )
    for m in model.modules():  # real running statistics
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 3, 30, 30) * 2 + 1)
    model.eval()
    fcn = convolutionalize(model, input_size=(3, 30, 30))  # features 30 -> 28 -> 14 -> 12 -> 6: pool window 3
    assert isinstance(fcn.pool, nn.AvgPool2d) and fcn.pool.kernel_size == (3, 3)
    assert fcn.classifier[0].kernel_size == (2, 2) and fcn.classifier[0].dilation == (3, 3)
    x = torch.randn(1, 3, 46, 42) * 2 + 1
    with torch.no_grad():
        out = fcn(x)
        ref = model(x[..., :30, :30])
        assert ref.abs().max() > 0.1 and out.shape == (1, 4, 5, 4)
        _close(out[0, :, 0, 0], ref[0])
        for i, j in ((4, 3), (2, 1)):
            _close(out[0, :, i, j], model(x[..., 4 * i:4 * i + 30, 4 * j:4 * j + 30])[0])


@pytest.mark.slow
def test_vgg16_same_at_224():
    torch.manual_seed(0)
    model = cnnlab.create_model("vgg16", num_classes=10).eval()
    _he_init(model)
    fcn = convolutionalize(model)
    assert [m.kernel_size for m in fcn.classifier if isinstance(m, nn.Conv2d)] == [(7, 7), (1, 1), (1, 1)]
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        _close(fcn(x)[:, :, 0, 0], model(x))


def test_clear_errors():
    with pytest.raises(ConfigError, match="cannot convolutionalize ResNet"):
        convolutionalize(cnnlab.create_model("resnet18"))
    with pytest.raises(ConfigError, match="input_size"):
        convolutionalize(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2)))
    with pytest.raises(ConfigError, match="cannot read a 4x4 map"):
        convolutionalize(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2)), input_size=(1, 6, 6))
    with pytest.raises(ConfigError, match="reads 64 features"):
        convolutionalize(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(64, 2)), input_size=(1, 6, 6))
    with pytest.raises(ConfigError, match="BatchNorm1d"):
        convolutionalize(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(32, 4), nn.BatchNorm1d(4)),
                         input_size=(1, 6, 6))
