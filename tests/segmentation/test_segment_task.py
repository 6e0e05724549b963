"""Segmentation through the task-generic engine: FCN on Fashion-MNIST scenes, exact resume, the
checkpoint's memory, `cnnlab segment train|eval|predict`, and one-line errors."""

import json

import pytest
import torch

from cnnlab.cli import main
from cnnlab.data import load_dataset
from cnnlab.errors import ConfigError, DataError
from cnnlab.train import TrainConfig, fit, load_checkpoint

SCENES = "fashion-scenes:size=64,max_items=2,n_train=192,n_test=32"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    return root, load_dataset(SCENES, "train", data_dir=root), load_dataset(SCENES, "test", data_dir=root)


def cfg(tmp_path, root, **kw):
    base = dict(task="segmentation", model="fcn8s_fastnet", data=SCENES, data_dir=str(root), epochs=2,
                batch_size=16, optimizer="adam", lr=3e-3, schedule="constant", progress="none",
                tensorboard=False, plots=False, threads=1, out_dir=str(tmp_path / "run"), eval_batch_size=16)
    return TrainConfig(**{**base, **kw})


@pytest.mark.slow
def test_fcn_learns_scenes_and_reports_the_fcn_metrics(scenes, tmp_path):
    root, train, test = scenes
    r = fit(cfg(tmp_path, root, epochs=6, plots=True), train_data=train, test_data=test)
    first, last = r.history[0], r.history[-1]
    assert last["train_loss"] < 0.7 * first["train_loss"]
    for key in ("train_pixel_acc", "test_mean_iu", "test_pixel_acc", "test_fw_iu", "test_boundary_f1"):
        assert key in last
    # the trivial baseline, all background, scores pixel acc = background share (~0.76) but mean IU =
    # share / 11 (~0.07); 6 epochs on 192 scenes reach ~0.19 mean IU and ~0.80 pixel acc
    bg_share = float((test.masks == 0).float().mean())
    assert r.final["pixel_acc"] > bg_share + 0.015
    assert r.final["mean_iu"] > max(0.13, 1.8 * bg_share / 11)
    assert r.best["metric"] == "test_mean_iu"
    assert (r.run_dir / "predictions.png").stat().st_size > 1000
    assert "test_mean_iu" in (r.run_dir / "metrics.csv").read_text().splitlines()[0]
    ckpt = load_checkpoint(r.run_dir, prefer="last")
    assert ckpt.meta["task"] == "segmentation" and ckpt.meta["classes"][0] == "background"
    assert ckpt.meta["num_classes"] == 11 and ckpt.config.task == "segmentation"


def test_segmentation_resume_is_bit_identical(scenes, tmp_path):
    root, train, test = scenes
    small = train.subset(range(64))
    opts = dict(augment="flip,crop:4", input_noise=0.05, dropout=None)
    whole = fit(cfg(tmp_path / "a", root, **opts), train_data=small, test_data=test)
    fit(cfg(tmp_path / "b", root, epochs=1, **opts), train_data=small, test_data=test)
    resumed = fit(cfg(tmp_path / "b", root, **opts), train_data=small, test_data=test, resume=tmp_path / "b" / "run")
    for (k, a), (_, b) in zip(whole.model.state_dict().items(), resumed.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    for key in ("train_loss", "train_pixel_acc", "test_mean_iu", "test_loss"):
        assert [h[key] for h in whole.history] == [h[key] for h in resumed.history], key


def test_fresh_scenes_train_on_new_scenes_each_epoch_and_resume_exactly(scenes, tmp_path):
    root, _, test = scenes
    fresh = SCENES.replace("n_train=192", "n_train=64") + ",fresh=1"
    fixed = fit(cfg(tmp_path / "a", root, data=fresh.removesuffix(",fresh=1")), test_data=test)
    whole = fit(cfg(tmp_path / "b", root, data=fresh), test_data=test)
    # epoch 1 trains on the same (cached) scenes, epoch 2 on 64 new ones
    assert whole.history[0]["train_loss"] == fixed.history[0]["train_loss"]
    assert whole.history[1]["train_loss"] != fixed.history[1]["train_loss"]
    fit(cfg(tmp_path / "c", root, data=fresh, epochs=1), test_data=test)
    resumed = fit(cfg(tmp_path / "c", root, data=fresh), test_data=test, resume=tmp_path / "c" / "run")
    for (k, a), (_, b) in zip(whole.model.state_dict().items(), resumed.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert [h["train_loss"] for h in whole.history] == [h["train_loss"] for h in resumed.history]


def test_a_classifier_or_mask_less_data_is_a_clear_error(scenes, tmp_path):
    root, train, test = scenes
    with pytest.raises(ConfigError, match="classifier; segmentation needs one of .*fcn8s_fastnet"):
        fit(cfg(tmp_path, root, model="resnet20"), train_data=train, test_data=test)
    synthetic = load_dataset("synthetic", "train", n_train=32, n_test=16)
    with pytest.raises(DataError, match="no segmentation masks"):
        fit(cfg(tmp_path, root), train_data=synthetic)


def _beats_all_background(final, masks):
    """Mean IU and pixel accuracy above an all-background prediction's on the same masks (pixel acc = the
    background share; mean IU = that share over the classes present), computed here, not remembered."""
    from cnnlab.segmentation.metrics import confusion_matrix, segmentation_scores

    base = segmentation_scores(confusion_matrix(torch.zeros_like(masks), masks, 11))
    assert final["mean_iu"] > base["mean_iu"] + 0.01, (final["mean_iu"], base["mean_iu"])
    assert final["pixel_acc"] > base["pixel_acc"], (final["pixel_acc"], base["pixel_acc"])


def test_segment_cli_train_eval_predict(scenes, tmp_path, capsys):
    from PIL import Image

    root, _, test = scenes
    run = tmp_path / "cli"
    assert main(["segment", "train", "--data", SCENES, "--data-dir", str(root), "--epochs", "3",
                 "--batch-size", "8", "--optimizer", "adam", "--lr", "0.003", "--threads", "1",
                 "--no-tensorboard", "--quiet", "--out-dir", str(run)]) == 0
    out = capsys.readouterr().out
    assert "mean IU" in out and "predictions.png" in out
    final = json.loads((run / "result.json").read_text())["final"]
    _beats_all_background(final, test.masks)
    assert main(["segment", "eval", "--checkpoint", str(run), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["mean_iu"] == pytest.approx(final["mean_iu"], abs=1e-6)  # same weights, same data, same metric
    assert len(ev["iou_per_class"]) == 11
    img = tmp_path / "scene.png"
    Image.fromarray(test.images[0, 0].numpy()).save(img)
    assert main(["segment", "predict", "--checkpoint", str(run), str(img), "--out", str(tmp_path / "pred"),
                 "--json"]) == 0
    pred = json.loads(capsys.readouterr().out)[0]
    assert abs(sum(pred["fractions"].values()) - 1) < 0.01
    with Image.open(pred["overlay"]) as im:
        assert im.size == (64 * 2 + 2, 64)  # image | prediction overlay


def test_segment_cli_errors_are_one_line(scenes, tmp_path, capsys):
    root, _, _ = scenes
    assert main(["segment", "eval", "--checkpoint", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
    assert main(["segment", "train", "--model", "resnet20", "--data", SCENES, "--data-dir", str(root),
                 "--epochs", "1", "--out-dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "classifier" in err[0]


@pytest.mark.slow
def test_two_process_segmentation_counts_every_test_pixel_once(scenes, tmp_path):
    """DDP needs no task code: the sharded evaluation's confusion matrices sum to the whole test set."""
    root, train, test = scenes
    r = fit(cfg(tmp_path, root, epochs=1, nproc=2), train_data=train.subset(range(64)), test_data=test)
    ckpt = load_checkpoint(r.run_dir, prefer="last")
    assert ckpt.meta["world_size"] == 2 and len(ckpt.meta["rng"]) == 2
    assert r.final["n"] == int((test.masks != 255).sum())  # every labelled test pixel, once
    assert sum(map(sum, r.final["confusion"])) == r.final["n"]
    assert 0 < r.final["mean_iu"] <= 1


def test_fcn_with_a_whitened_stem_is_whitened_from_the_scenes_by_fit(scenes, tmp_path):
    """model_kwargs stem=whitened: fit whitens the FCN backbone's frozen stem from the first training scenes
    (a pixel budget caps how many large images it reads) and trains the rest."""
    from cnnlab.models import create_model
    from cnnlab.train.task import DataSpec, get_task

    root, train, test = scenes
    model = create_model("fcn8s_fastnet", num_classes=11, in_chans=1, stem="whitened")
    assert model.needs_data_init and not create_model("fcn8s_fastnet", num_classes=11, in_chans=1).needs_data_init
    r = fit(cfg(tmp_path, root, epochs=1, model_kwargs={"stem": "whitened"}), model=model, train_data=train,
            test_data=test)
    stem = model.backbone.stem
    assert float(stem.whitened) == 1.0 and not stem.conv.weight.requires_grad
    w = stem.conv.weight
    assert w.shape == (16, 1, 4, 4) and torch.equal(w[8:], -w[:8])
    assert r.history[-1]["train_loss"] > 0
    spec = DataSpec(11, 1, 64, (64, 64), list(train.classes), list(train.mean), list(train.std))
    assert get_task("segmentation").init_inputs(train, spec, max_pixels=10 * 64 * 64).shape == (10, 1, 64, 64)


def test_fcn2s_trains_through_the_engine(scenes, tmp_path):
    # FCN-2s (pool2 and pool1 skips past the paper's 8s) runs the same engine path; 3 epochs lower the loss
    root, train, test = scenes
    r = fit(cfg(tmp_path, root, model="fcn2s_fastnet", epochs=3), train_data=train, test_data=test)
    assert r.history[-1]["train_loss"] < 0.7 * r.history[0]["train_loss"]
    assert 0 < r.final["mean_iu"] <= 1 and load_checkpoint(r.run_dir).meta["model"] == "fcn2s_fastnet"


def test_segment_cli_on_a_voc_folder(scenes, tmp_path, capsys):
    # the same commands on a VOC-style folder (JPEGImages/, SegmentationClass/ palette PNGs, ImageSets/):
    # scenes written by `cnnlab data export --format voc`, read back through voc:DIR
    root, _, _ = scenes
    voc = tmp_path / "voc"
    assert main(["data", "export", SCENES, str(voc), "--format", "voc", "--data-dir", str(root)]) == 0
    capsys.readouterr()
    run = tmp_path / "voc-run"
    assert main(["segment", "train", "--data", f"voc:{voc}", "--model", "fcn8s_fastnet", "--img-size", "64",
                 "--epochs", "3", "--batch-size", "8", "--optimizer", "adam", "--lr", "0.003", "--threads", "1",
                 "--no-tensorboard", "--no-plots", "--quiet", "--out-dir", str(run)]) == 0
    capsys.readouterr()
    final = json.loads((run / "result.json").read_text())["final"]
    _beats_all_background(final, load_dataset(f"voc:{voc}", split="test").masks)
    ckpt = load_checkpoint(run)
    assert ckpt.meta["classes"][0] == "background" and ckpt.meta["num_classes"] == 11
    assert 0 < final["mean_iu"] <= 1 and final["n"] == 32 * 64 * 64  # every test pixel scored once
    assert main(["segment", "eval", "--checkpoint", str(run), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["data"] == f"voc:{voc}" and ev["mean_iu"] == pytest.approx(final["mean_iu"], abs=1e-6)
    image = voc / "JPEGImages" / "test_000000.png"  # lossless: masks and images stay exact
    assert main(["segment", "predict", "--checkpoint", str(run), str(image), "--out", str(tmp_path / "p"),
                 "--json"]) == 0
    assert abs(sum(json.loads(capsys.readouterr().out)[0]["fractions"].values()) - 1) < 0.01
