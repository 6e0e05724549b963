"""SENet (Hu et al. 2018): SE block formula, placement (Fig. 3), add_se, SE-ResNet parameter counts."""

import pytest
import torch
from helpers import n_params
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.models import create_model
from cnnlab.models.resnet import Bottleneck
from cnnlab.models.senet import SqueezeExcitation, add_se


def se_params(channels_per_block: list[int], r: int = 16) -> int:
    """fc1 (C*C/r + C/r) + fc2 (C/r*C + C) per block."""
    return sum(2 * c * (c // r) + c // r + c for c in channels_per_block)


RESNET50_BLOCKS = [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3


@pytest.mark.parametrize("name, base, timm_count", [
    ("se_resnet50", "resnet50", 28_088_024),
    ("se_resnext50_32x4d", "resnext50_32x4d", 27_559_896),
])
def test_se_resnets_add_exactly_the_se_parameters(name, base, timm_count):
    with torch.device("meta"):
        se, plain = create_model(name), create_model(base)
    assert se_params(RESNET50_BLOCKS) == 2_530_992
    assert n_params(se) == n_params(plain) + se_params(RESNET50_BLOCKS) == timm_count
    assert se.layer1[0].se.fc1.weight.shape == (16, 256, 1, 1)
    assert se.layer4[2].se.fc2.weight.shape == (2048, 128, 1, 1)
    plain_keys = set(plain.state_dict())
    assert plain_keys < set(se.state_dict())
    assert all(".se.fc" in k for k in set(se.state_dict()) - plain_keys)


def test_se_block_formula():
    se = SqueezeExcitation(32, 2)
    u = torch.randn(2, 32, 5, 5)
    z = u.mean((2, 3))  # squeeze, Eq. 2
    s = torch.sigmoid(se.fc2.weight.flatten(1) @ torch.relu(se.fc1.weight.flatten(1) @ z.T + se.fc1.bias[:, None])
                      + se.fc2.bias[:, None]).T  # excitation, Eq. 3
    torch.testing.assert_close(se(u), u * s[:, :, None, None])  # scale, Eq. 4


def test_add_se_keeps_weights_and_returns_the_model():
    model = create_model("resnet18", num_classes=10, img_size=32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert add_se(model) is model
    after = model.state_dict()
    for k, v in before.items():
        torch.testing.assert_close(after[k], v, rtol=0, atol=0)
    assert model.layer1[0].se.fc1.out_channels == 64 // 16
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def _set_gate(model, bias):
    for m in model.modules():
        if isinstance(m, SqueezeExcitation):
            nn.init.zeros_(m.fc2.weight)
            nn.init.constant_(m.fc2.bias, bias)


def test_se_sits_on_the_residual_branch_before_the_addition():
    """Gate 1 leaves the net unchanged; gate 0 removes the residual branch: y = relu(x)."""
    model = create_model("resnet20", num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        ref = model(x)
        add_se(model, reduction=4)
        _set_gate(model, 100.0)
        torch.testing.assert_close(model(x), ref)
        _set_gate(model, -100.0)
        h = torch.randn(2, 16, 8, 8)
        torch.testing.assert_close(model.layer1[1](h), torch.relu(h))


@pytest.mark.parametrize("name", ["resnext50_32x4d", "wrn28_10", "resnet56"])
def test_add_se_on_other_residual_nets(name):
    with torch.device("meta"):
        model = add_se(create_model(name, img_size=32))
    assert sum(isinstance(m, SqueezeExcitation) for m in model.modules()) > 0
    assert all(b.se is not None for b in model.modules() if isinstance(b, Bottleneck))


@pytest.mark.parametrize("model", [
    nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()),
    create_model("plain20", num_classes=10),
])
def test_add_se_rejects_models_without_residual_blocks(model):
    with pytest.raises(ConfigError, match="no residual blocks"):
        add_se(model)


def test_add_se_twice_or_bad_reduction_is_an_error():
    model = add_se(create_model("resnet20", num_classes=10))
    with pytest.raises(ConfigError, match="already"):
        add_se(model)
    with pytest.raises(ConfigError, match="reduction"):
        add_se(create_model("resnet20", num_classes=10), reduction=0)
