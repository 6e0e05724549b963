"""SqueezeNet (Iandola et al. 2016, Table 1) and the v1.1 variant."""

import torch
from helpers import n_params

import cnnlab
from cnnlab.models.squeezenet import Fire


def test_table_1_parameter_counts_before_pruning():
    model = cnnlab.create_model("squeezenet1_0")
    assert n_params(model.features[0]) == 14_208  # conv1
    fires = [m for m in model.features if isinstance(m, Fire)]
    assert [n_params(f) for f in fires] == [11_920, 12_432, 45_344, 49_440, 104_880, 111_024, 188_992, 197_184]
    assert n_params(model.classifier) == 513_000  # conv10


def test_fire_concatenates_expand_branches():
    fire = Fire(96, 16, 64, 64)
    y = fire(torch.randn(1, 96, 13, 13))
    assert y.shape == (1, 128, 13, 13)
    assert fire.squeeze.out_channels < fire.expand1x1.out_channels + fire.expand3x3.out_channels


def test_v1_1_has_fewer_parameters_and_a_3x3_stem():
    v10 = cnnlab.create_model("squeezenet1_0")
    v11 = cnnlab.create_model("squeezenet1_1")
    assert n_params(v10) - n_params(v11) == 12_928
    assert v11.features[0].kernel_size == (3, 3) and v11.features[0].out_channels == 64


def test_no_fully_connected_layer_and_13x13_final_maps():
    for name in ("squeezenet1_0", "squeezenet1_1"):
        model = cnnlab.create_model(name).eval()
        assert not any(isinstance(m, torch.nn.Linear) for m in model.modules())
        with torch.inference_mode():
            assert model.forward_features(torch.randn(1, 3, 224, 224)).shape == (1, 512, 13, 13)


def test_small_variant_replaces_only_the_stem():
    small = cnnlab.create_model("squeezenet1_0", img_size=32)
    assert small.features[0].kernel_size == (3, 3) and small.features[0].stride == (1, 1)
    assert isinstance(small.features[2], torch.nn.Identity)
    big = cnnlab.create_model("squeezenet1_0").state_dict()
    sd = small.state_dict()
    assert [k for k in big if big[k].shape != sd[k].shape] == ["features.0.weight"]
