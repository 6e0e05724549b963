"""GoogLeNet (Szegedy et al. 2015): Table 1 widths, auxiliary classifiers (§5), torchvision twin."""

import pytest
import torch
from helpers import assert_transform_input_matches_torchvision, meta_model, n_params

import cnnlab
from cnnlab.models import AuxOutputs
from cnnlab.models.googlenet import Inception


def test_parameter_counts_with_and_without_auxiliary_heads():
    model, plain = meta_model("googlenet"), meta_model("googlenet", aux_logits=False)
    assert n_params(model) == 13_004_888
    assert n_params(plain) == 6_624_904  # torchvision's published count for the ImageNet weights
    assert plain.aux1 is None and plain.aux2 is None


def test_inception_output_widths_of_table_1():
    model = meta_model("googlenet")
    widths = {name: sum(b[-1].conv.out_channels if isinstance(b, torch.nn.Sequential) else b.conv.out_channels
                        for b in (m.branch1, m.branch2, m.branch3, m.branch4))
              for name, m in model.named_children() if isinstance(m, Inception)}
    assert widths == {"inception3a": 256, "inception3b": 480, "inception4a": 512, "inception4b": 512,
                      "inception4c": 512, "inception4d": 528, "inception4e": 832, "inception5a": 832,
                      "inception5b": 1024}


def test_auxiliary_outputs_only_in_training():
    model = cnnlab.create_model("googlenet", num_classes=7, img_size=32)
    x = torch.randn(2, 3, 32, 32)
    out = model.train()(x)
    assert isinstance(out, AuxOutputs)
    assert out.logits.shape == (2, 7) and [a.shape for a in out.aux] == [(2, 7), (2, 7)]
    assert out.aux_weight == 0.3
    with torch.inference_mode():
        assert isinstance(model.eval()(x), torch.Tensor)
    no_aux = cnnlab.create_model("googlenet", num_classes=7, img_size=32, aux_logits=False).train()
    assert isinstance(no_aux(x), torch.Tensor)


def test_reset_classifier_also_resets_auxiliary_heads():
    model = cnnlab.create_model("googlenet", img_size=32)
    model.reset_classifier(4)
    assert model.aux1.fc2.out_features == 4 and model.aux2.fc2.out_features == 4
    out = model.train()(torch.randn(2, 3, 32, 32))
    assert all(a.shape == (2, 4) for a in out.aux)
    model.reset_classifier(0)
    assert not isinstance(model.train()(torch.randn(2, 3, 32, 32)), AuxOutputs)


def test_transform_input_matches_torchvision():
    assert_transform_input_matches_torchvision("googlenet", 112)


@pytest.mark.parametrize("size, final", [(224, 7), (32, 8)])
def test_final_feature_map(size, final):
    model = cnnlab.create_model("googlenet", img_size=size).eval()
    with torch.inference_mode():
        assert model.forward_features(torch.randn(1, 3, size, size)).shape == (1, 1024, final, final)


def test_small_variant_stem():
    model = cnnlab.create_model("googlenet", img_size=32)
    assert model.conv1.conv.kernel_size == (3, 3) and model.conv1.conv.stride == (1, 1)
    assert isinstance(model.maxpool1, torch.nn.Identity) and isinstance(model.maxpool2, torch.nn.Identity)
