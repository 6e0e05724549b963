"""Network in Network (Lin et al. 2014): mlpconv layers and global average pooling, no FC layer."""

import torch
from helpers import n_params

import cnnlab


def test_imagenet_model_parameter_count_of_caffe_model_zoo():
    with torch.device("meta"):
        model = cnnlab.create_model("nin")
    assert n_params(model) == 7_595_176
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96, 96, 96, 256, 256, 256, 384, 384, 384, 1024, 1024, 1000]
    assert [c.kernel_size[0] for c in convs] == [11, 1, 1, 5, 1, 1, 3, 1, 1, 3, 1, 1]


def test_no_fully_connected_layer():
    for size in (224, 32):
        model = cnnlab.create_model("nin", img_size=size)
        assert not any(isinstance(m, torch.nn.Linear) for m in model.modules())
        assert isinstance(model.get_classifier(), torch.nn.Conv2d)
        assert model.get_classifier().kernel_size == (1, 1)


def test_cifar_model_of_section_4_2():
    model = cnnlab.create_model("nin", num_classes=10, img_size=32)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [192, 160, 96, 192, 192, 192, 192, 192, 10]
    assert n_params(model) == 966_986
    assert [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)] == [0.5, 0.5]


def test_feature_maps_and_global_average_pooling():
    model = cnnlab.create_model("nin").eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        feats = model.forward_features(x)
        assert feats.shape == (1, 1024, 6, 6)  # the Caffe model's 6x6 pool4 input
        class_maps = torch.relu(model.classifier(feats))
        torch.testing.assert_close(model(x), class_maps.mean(dim=(2, 3)))  # §3.2: logit = map average
        assert model.forward_head(feats, pre_logits=True).shape == (1, 1024)
    small = cnnlab.create_model("nin", num_classes=10, img_size=32).eval()
    with torch.inference_mode():
        assert small.forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 192, 8, 8)


def test_reset_classifier_keeps_a_1x1_conv():
    model = cnnlab.create_model("nin", img_size=32)
    model.reset_classifier(5)
    assert isinstance(model.classifier, torch.nn.Conv2d) and model.classifier.out_channels == 5
    with torch.inference_mode():
        assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 5)
