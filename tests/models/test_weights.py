"""weights=: files (safetensors, torchvision .pth), the hub cache, head replacement, in_chans adaptation."""

import pytest
import torch
import torchvision
from helpers import assert_same_function, calibrate
from safetensors.torch import save_file

import cnnlab
from cnnlab.errors import WeightsError
from cnnlab.models import get_model_info
from cnnlab.models.weights import adapt_input_conv, read_state_dict, resolve_weights


@pytest.fixture(scope="module")
def tv_resnet18():
    torch.manual_seed(1)
    return torchvision.models.resnet18(weights=None).eval()


def test_torchvision_pth_loads_strictly(tmp_path, tv_resnet18):
    path = tmp_path / "r18.pth"
    torch.save(tv_resnet18.state_dict(), path)
    model = cnnlab.create_model("resnet18", weights=str(path)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), tv_resnet18(x))
    assert model.pretrained_cfg["weights"]["origin"] == str(path)


def test_safetensors_and_wrapped_checkpoints(tmp_path, tv_resnet18):
    sd = {k: v.contiguous() for k, v in tv_resnet18.state_dict().items()}
    save_file(sd, tmp_path / "r18.safetensors")
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "wrapped.pt")
    for name in ("r18.safetensors", "wrapped.pt"):
        loaded = read_state_dict(tmp_path / name)
        assert set(loaded) == set(sd)
        assert torch.equal(loaded["fc.weight"], sd["fc.weight"])


def test_new_head_and_one_channel_input(tmp_path, tv_resnet18):
    path = tmp_path / "r18.pth"
    torch.save(tv_resnet18.state_dict(), path)
    model = cnnlab.create_model("resnet18", num_classes=10, in_chans=1, weights=str(path))
    assert model.fc.out_features == 10
    torch.testing.assert_close(model.conv1.weight, tv_resnet18.conv1.weight.sum(1, keepdim=True))
    torch.testing.assert_close(model.layer4[1].conv2.weight, tv_resnet18.layer4[1].conv2.weight)
    assert model(torch.randn(1, 1, 64, 64)).shape == (1, 10)


def test_adapt_input_conv_preserves_response_to_grey_images():
    w = torch.randn(8, 3, 3, 3)
    x1 = torch.randn(1, 1, 5, 5)
    # A grey image (same in all channels) gives the same response through the summed kernel.
    out_rgb = torch.nn.functional.conv2d(x1.expand(1, 3, 5, 5), w)
    torch.testing.assert_close(torch.nn.functional.conv2d(x1, adapt_input_conv(w, 1)), out_rgb)
    assert adapt_input_conv(w, 5).shape == (8, 5, 3, 3)


def test_imagenet_from_hub_cache(tmp_path, monkeypatch, tv_resnet18):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsError, match="resnet18-f37072fd.pth"):
        resolve_weights(get_model_info("resnet18"), "imagenet")
    ckpt = tmp_path / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.save(tv_resnet18.state_dict(), ckpt / "resnet18-f37072fd.pth")
    model = cnnlab.create_model("resnet18", weights="imagenet")
    meta = model.pretrained_cfg["weights"]
    assert meta["input_size"] == 224 and meta["resize_size"] == 256 and len(meta["categories"]) == 1000
    assert meta["categories"][0] == "tench"
    torch.testing.assert_close(model.fc.weight, tv_resnet18.fc.weight)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04broken zip"])
def test_corrupt_files_are_clear_errors(tmp_path, content):
    for suffix in (".pth", ".safetensors"):
        path = tmp_path / f"bad{suffix}"
        path.write_bytes(content)
        with pytest.raises(WeightsError, match="cannot read weights file"):
            cnnlab.create_model("resnet18", weights=str(path))


def test_missing_file_and_wrong_model(tmp_path, tv_resnet18):
    with pytest.raises(WeightsError, match="not found"):
        cnnlab.create_model("resnet18", weights=str(tmp_path / "nope.pth"))
    path = tmp_path / "r18.pth"
    torch.save(tv_resnet18.state_dict(), path)
    with pytest.raises(WeightsError, match="do not fit resnet34"):
        cnnlab.create_model("resnet34", weights=str(path))


def test_pickled_objects_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, path)
    with pytest.raises(WeightsError):
        read_state_dict(path)


def test_weights_argument_errors_say_what_is_accepted(tmp_path):
    with pytest.raises(WeightsError, match="is a directory; pass a .safetensors or .pth/.pt file"):
        cnnlab.create_model("resnet18", weights=str(tmp_path))
    with pytest.raises(WeightsError, match='accepted: "imagenet" or a path'):
        cnnlab.create_model("resnet18", weights="imagenet2")


def test_imagenet_lookup_lists_each_missing_file_once(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(WeightsError, match="looked in") as e:
        cnnlab.create_model("resnet18", weights="imagenet")
    looked = str(e.value).split("looked in: ", 1)[1].split("; ")
    assert looked and len(looked) == len(set(looked)), looked


def test_googlenet_imagenet_weights_switch_on_transform_input(tmp_path, monkeypatch):
    """torchvision's GoogLeNet checkpoint expects transform_input=True; weights="imagenet" sets it."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    tv = torchvision.models.googlenet(weights=None, aux_logits=True, transform_input=True, init_weights=False)
    calibrate(tv, 64)  # fresh init: GoogLeNet's logits hardly depend on the input
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(tv.state_dict(), tmp_path / "hub" / "checkpoints" / "googlenet-1378be20.pth")
    model = cnnlab.create_model("googlenet", weights="imagenet")
    assert model.transform_input is True
    assert_same_function(model, tv, 64)
