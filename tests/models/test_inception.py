"""Inception-v3 (Szegedy et al. 2016): Table 1 grids, auxiliary head (§4), torchvision twin."""

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_transform_input_matches_torchvision, meta_model, n_params

import cnnlab
from cnnlab.errors import ConfigError
from cnnlab.models import AuxOutputs
from cnnlab.models.inception import InceptionAux


def test_parameter_count_with_and_without_auxiliary_head():
    model, plain = meta_model("inception_v3"), meta_model("inception_v3", aux_logits=False)
    assert n_params(model) == 27_161_264
    assert n_params(model) - n_params(plain) == n_params(model.AuxLogits) == 3_326_696
    assert model.pretrained_cfg["default_size"] == 299


def test_grid_sizes_of_table_1_at_299():
    model = cnnlab.create_model("inception_v3").eval()
    shapes = {}
    for name in ("maxpool2", "Mixed_5d", "Mixed_6e", "Mixed_7c"):
        model.get_submodule(name).register_forward_hook(
            lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:])))
    with torch.inference_mode():
        model(torch.randn(1, 3, 299, 299))
    assert shapes == {"maxpool2": (192, 35, 35), "Mixed_5d": (288, 35, 35), "Mixed_6e": (768, 17, 17),
                      "Mixed_7c": (2048, 8, 8)}


def test_auxiliary_output_only_in_training():
    model = cnnlab.create_model("inception_v3", num_classes=5, img_size=28, in_chans=1)
    x = torch.randn(2, 1, 28, 28)
    out = model.train()(x)
    assert isinstance(out, AuxOutputs) and len(out.aux) == 1 and out.aux[0].shape == (2, 5)
    with torch.inference_mode():
        assert isinstance(model.eval()(x), torch.Tensor)


def test_aux_head_pools_5x5_stride_3_on_the_17x17_grid():
    aux = InceptionAux(768, 10).eval()
    x = torch.randn(1, 768, 17, 17)
    pooled = F.avg_pool2d(x, 5, 3)
    assert pooled.shape[-1] == 5
    expected = aux.fc(torch.flatten(F.adaptive_avg_pool2d(aux.conv1(aux.conv0(pooled)), 1), 1))
    with torch.inference_mode():
        torch.testing.assert_close(aux(x), expected)
        assert aux(torch.randn(1, 768, 12, 12)).shape == (1, 10)  # 224x224 inputs: adaptive 5x5


def test_transform_input_matches_torchvision():
    assert_transform_input_matches_torchvision("inception_v3", 75)  # torchvision's minimum size keeps this cheap


def test_small_variant_has_a_stride_1_stem_and_the_same_keys():
    small = cnnlab.create_model("inception_v3", img_size=32)
    big = cnnlab.create_model("inception_v3")
    assert small.Conv2d_1a_3x3.conv.stride == (1, 1)
    assert isinstance(small.maxpool1, torch.nn.Identity) and isinstance(small.maxpool2, torch.nn.Identity)
    assert {k: v.shape for k, v in small.state_dict().items()} == {k: v.shape for k, v in big.state_dict().items()}
    with torch.inference_mode():
        assert small.eval().forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 2048, 7, 7)


@pytest.mark.parametrize("size", [65, 74])
def test_sizes_between_the_two_layouts_are_rejected(size):
    with pytest.raises(ConfigError, match="75"):
        cnnlab.create_model("inception_v3", img_size=size)
