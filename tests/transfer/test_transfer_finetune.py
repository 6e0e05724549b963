"""finetune end to end on an image folder, the features cache, and one-line errors for bad input."""

import json
import shutil

import pytest
import torch
from PIL import Image
from transfer_helpers import IMG, synthetic

import cnnlab
from cnnlab.cli import main
from cnnlab.errors import DataError, WeightsError
from cnnlab.train.checkpoint import load_checkpoint
from cnnlab.transfer import cache_key, cached_features, finetune
from cnnlab.transfer.samples import write_lfw_folder


@pytest.fixture(scope="module")
def lfw(tmp_path_factory):
    """Real photos (scikit-image's LFW subset): 6 train + 3 test images per class, 25x25 grey."""
    return write_lfw_folder(tmp_path_factory.mktemp("lfw"), test_per_class=3, per_class=6)


def test_finetune_image_folder_end_to_end_then_predict_and_eval(lfw, r18_file, tmp_path, quick, capsys):
    (lfw / "train" / "face" / "broken.png").write_bytes(b"not a png")  # skipped with a count
    try:
        with pytest.warns(UserWarning, match="skipped 1 unreadable"):
            r = finetune("resnet18", weights=r18_file, data=f"imagefolder:{lfw}", features_cache=True,
                         cache_dir=str(tmp_path / "cache"), out_dir=str(tmp_path / "run"), **quick)
    finally:
        (lfw / "train" / "face" / "broken.png").unlink()
    assert r.skipped_images == 1 and r.final["split"] == "test" and r.final["n"] == 6
    assert r.features["train"]["n"] == 12 and r.features["train"]["dim"] == 512
    w = r.weights
    assert (w["input_size"], w["resize_size"], w["tag"], w["origin"]) == (IMG, round(IMG * 256 / 224), "file", r18_file)
    # the checkpoint holds the whole model with its classes and preprocessing
    ckpt = load_checkpoint(r.run_dir)
    assert ckpt.classes == ["background", "face"] and ckpt.meta["in_chans"] == 1 and ckpt.meta["img_size"] == IMG
    assert ckpt.meta["mean"] == pytest.approx([sum((0.485, 0.456, 0.406)) / 3])
    rebuilt = ckpt.build_model()
    x = torch.randn(2, 1, IMG, IMG)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), r.model(x))
    image = next((lfw / "test" / "face").iterdir())
    assert main(["predict", "--checkpoint", str(r.run_dir), str(image), "--json"]) == 0
    top = json.loads(capsys.readouterr().out)[0]["top"]
    assert {t["class"] for t in top} == {"background", "face"}
    assert main(["eval", "--checkpoint", str(r.run_dir), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n"] == 6 and metrics["classes"] == ["background", "face"]


def test_features_cache_trains_the_same_head_as_the_uncached_run(r18_file, tmp_path, quick):
    """Same data order, same head init, same frozen features: the cached head equals the uncached one."""
    kw = dict(weights=r18_file, train_data=synthetic(8, 0), test_data=synthetic(6, 1), **quick)
    plain = finetune("resnet18", out_dir=str(tmp_path / "plain"), **kw)
    cached = finetune("resnet18", features_cache=True, cache_dir=str(tmp_path / "c"), out_dir=str(tmp_path / "c1"),
                      **kw)
    torch.testing.assert_close(cached.model.fc.weight, plain.model.fc.weight, rtol=1e-4, atol=1e-5)
    assert cached.final["top1"] == plain.final["top1"]
    assert cached.final["loss"] == pytest.approx(plain.final["loss"], rel=1e-4)
    assert not cached.features["hit"]
    again = finetune("resnet18", features_cache=True, cache_dir=str(tmp_path / "c"), out_dir=str(tmp_path / "c2"),
                     **kw)
    assert again.features["hit"] and again.features["train"]["path"] == cached.features["train"]["path"]
    torch.testing.assert_close(again.model.fc.weight, cached.model.fc.weight)


def test_cache_key_follows_what_determines_the_features(tmp_path):
    torch.manual_seed(0)
    model = cnnlab.create_model("resnet18", num_classes=2, img_size=IMG).eval()
    ds = synthetic(4, 0)
    key = cache_key(model, ds, IMG)
    assert cache_key(model, ds, IMG) == key
    model.reset_classifier(5)  # the head does not change the features
    assert cache_key(model, ds, IMG) == key
    assert cache_key(model, ds, IMG + 8) != key
    assert cache_key(model, synthetic(4, 1), IMG) != key
    with torch.no_grad():
        model.layer1[0].bn1.running_mean += 1
    assert cache_key(model, ds, IMG) != key
    feats, info = cached_features(model, ds, IMG, tmp_path)
    (tmp_path / info["path"].rsplit("/", 1)[1]).write_bytes(b"garbage")  # a damaged file is recomputed
    again, info2 = cached_features(model, ds, IMG, tmp_path)
    assert not info2["hit"] and torch.equal(again.features, feats.features)


def test_one_line_errors_for_bad_folders(tmp_path, r18_file, quick):
    one = tmp_path / "one" / "cat"
    one.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(one / "a.png")
    with pytest.raises(DataError, match="found 1 class sub-folder"):
        finetune("resnet18", weights=r18_file, data=f"imagefolder:{one.parent}", **quick)
    empty = tmp_path / "empty"
    for c in ("a", "b"):
        (empty / c).mkdir(parents=True)
        (empty / c / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="no readable images"):
        finetune("resnet18", weights=r18_file, data=f"imagefolder:{empty}", **quick)
    bad = tmp_path / "bad"
    for c in ("a", "b"):
        (bad / c).mkdir(parents=True)
        (bad / c / "x.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DataError, match="no readable images"), pytest.warns(UserWarning, match="skipped 2"):
        finetune("resnet18", weights=r18_file, data=f"imagefolder:{bad}", **quick)


def test_weights_for_another_architecture_and_imagenet_with_nothing_installed(lfw, r18_file, tmp_path, monkeypatch,
                                                                              quick):
    data = f"imagefolder:{lfw}"
    with pytest.raises(WeightsError, match=r"do not fit resnet34: .*missing \(e\.g\. layer1\.2"):
        finetune("resnet34", weights=r18_file, data=data, **quick)
    with pytest.raises(WeightsError, match="small-input variant"):
        finetune("resnet18", weights=r18_file, data=data, **{**quick, "img_size": 32})
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(WeightsError) as e:
        finetune("resnet18", weights="imagenet", data=data, **quick)
    msg = str(e.value)
    assert "\n" not in msg and "nothing is downloaded" in msg
    assert f"looked in: {tmp_path}/hub/checkpoints/resnet18-f37072fd.pth" in msg
    assert "download https://download.pytorch.org/models/resnet18-f37072fd.pth into" in msg
    assert not (tmp_path / "hub").exists()  # nothing was fetched or created


def test_cli_finetune_fine_tune_mode_on_a_folder(lfw, r18_file, tmp_path, capsys):
    run = tmp_path / "cli"
    rc = main(["finetune", "--model", "resnet18", "--weights", r18_file, "--data", f"imagefolder:{lfw}",
               "--mode", "fine-tune", "--unfreeze", "layer4", "--lr-backbone", "1e-4", "--epochs", "1",
               "--batch-size", "4", "--img-size", str(IMG), "--progress", "none", "--no-plots", "--no-tensorboard",
               "--out-dir", str(run)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "fine-tune: 8,394,754 trainable / 2,776,512 frozen parameters (training fc, layer4;" in out
    assert "15 BatchNorm layers keep their statistics" in out
    assert "final test top-1" in out and (run / "last.safetensors").is_file()
    rc = main(["finetune", "--model", "resnet18", "--weights", r18_file, "--data", f"imagefolder:{lfw}",
               "--features-cache", "--mode", "fine-tune"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0
    assert "features cache needs mode=feature-extract" in err
    shutil.rmtree(run)
