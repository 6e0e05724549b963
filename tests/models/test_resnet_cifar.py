"""CIFAR ResNets (He et al. 2016, §4.2, Table 6), plain baselines (Fig. 6) and WRN-28-10."""

import pytest
import torch
from helpers import n_params
from torch import nn

from cnnlab.models import create_model
from cnnlab.models.resnet_cifar import CifarBasicBlock, ShortcutA, WideBasicBlock

# (name, n, exact count at 10 classes with option-A shortcuts, paper Table 6 figure in millions, digits)
TABLE6 = [
    ("resnet20", 3, 269_722, 0.27, 2),
    ("resnet32", 5, 464_154, 0.46, 2),
    ("resnet44", 7, 658_586, 0.66, 2),
    ("resnet56", 9, 853_018, 0.85, 2),
    ("resnet110", 18, 1_727_962, 1.7, 1),
]


@pytest.mark.parametrize("name, n, exact, paper, digits", TABLE6)
def test_params_match_table6(name, n, exact, paper, digits):
    with torch.device("meta"):
        model = create_model(name, num_classes=10)
    got = n_params(model)
    assert got == exact
    assert round(got / 1e6, digits) == paper  # consistent with the paper's rounded figure
    if name != "resnet110":  # 1.7M is rounded to 2 digits: 1,727,962 is 1.6% above it
        assert abs(got - paper * 1e6) <= 0.01 * paper * 1e6


@pytest.mark.parametrize("name, n, exact, paper, digits", TABLE6)
def test_6n_plus_2_weighted_layers(name, n, exact, paper, digits):
    with torch.device("meta"):
        model = create_model(name, num_classes=10)
    weighted = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    assert len(weighted) == 6 * n + 2  # option A: no convolutions on the shortcuts


def test_stage_shapes():
    model = create_model("resnet20", num_classes=10)
    x = torch.empty(1, 3, 32, 32, device="meta")
    model = model.to("meta")
    out = model.relu(model.bn1(model.conv1(x)))
    shapes = []
    for layer in (model.layer1, model.layer2, model.layer3):
        out = layer(out)
        shapes.append(tuple(out.shape[1:]))
    assert shapes == [(16, 32, 32), (32, 16, 16), (64, 8, 8)]


def test_option_a_shortcut_subsamples_and_zero_pads():
    x = torch.randn(2, 16, 32, 32)
    y = ShortcutA(16, 32, 2)(x)
    assert y.shape == (2, 32, 16, 16)
    torch.testing.assert_close(y[:, 8:24], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, :8]) == 0 and torch.count_nonzero(y[:, 24:]) == 0


@pytest.mark.parametrize("plain, resnet", [("plain20", "resnet20"), ("plain56", "resnet56")])
def test_plain_nets_are_the_same_nets_without_shortcuts(plain, resnet):
    p = create_model(plain, num_classes=10).eval()
    r = create_model(resnet, num_classes=10).eval()
    assert n_params(p) == n_params(r)
    p.load_state_dict(r.state_dict(), strict=True)
    assert all(not b.residual for b in p.modules() if isinstance(b, CifarBasicBlock))
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert not torch.allclose(p(x), r(x))
        h = torch.randn(2, 16, 8, 8)
        branch = _branch(r.layer1[0], h)
        torch.testing.assert_close(_branch(p.layer1[0], h), branch)
        torch.testing.assert_close(r.layer1[0](h), torch.relu(branch + h))  # Fig. 2: relu(F(x) + x)
        torch.testing.assert_close(p.layer1[0](h), torch.relu(branch))  # Fig. 6 plain: relu(F(x))


def _branch(block, h):
    return block.bn2(block.conv2(block.relu(block.bn1(block.conv1(h)))))


def test_wrn28_10_matches_paper():
    with torch.device("meta"):
        model = create_model("wrn28_10", num_classes=10)
    got = n_params(model)
    assert got == 36_479_194
    assert abs(got - 36.5e6) <= 0.01 * 36.5e6  # Zagoruyko & Komodakis 2016, Table 4: 36.5M
    assert [len(s) for s in (model.layer1, model.layer2, model.layer3)] == [4, 4, 4]  # (28 - 4) / 6
    assert [s[0].conv1.out_channels for s in (model.layer1, model.layer2, model.layer3)] == [160, 320, 640]
    assert model.num_features == 640


def test_wrn_block_is_pre_activation_with_dropout():
    block = WideBasicBlock(16, 160, 1, drop_rate=0.3)
    assert list(block.named_children())[0][0] == "bn1" and block.bn1.num_features == 16
    assert block.dropout.p == 0.3 and block.shortcut is not None
    model = create_model("wrn28_10", num_classes=10, drop_rate=0.3)
    assert all(b.dropout.p == 0.3 for b in model.modules() if isinstance(b, WideBasicBlock))
    # Identity shortcut where shapes agree: y = x + F(x).
    ident = WideBasicBlock(8, 8).eval()
    nn.init.zeros_(ident.conv2.weight)
    x = torch.randn(1, 8, 6, 6)
    torch.testing.assert_close(ident(x), x)


def test_cifar_defaults():
    model = create_model("resnet56")
    cfg = model.pretrained_cfg
    assert cfg["default_size"] == 32 and cfg["img_size"] == 32
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
