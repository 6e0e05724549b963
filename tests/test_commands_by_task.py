"""Every command that takes a checkpoint or a dataset, given a run or data of each task: it does the task's own
thing or refuses in one line naming what to use -- never an internal error."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli import main
from cnnlab.data import load_dataset
from cnnlab.train import TrainConfig, fit

SCENES = "fashion-scenes:size=64,max_items=2,n_train=32,n_test=8"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny run of each task (1 epoch each), and a photo."""
    root = tmp_path_factory.mktemp("by_task")
    common = dict(epochs=1, batch_size=16, progress="none", plots=False, tensorboard=False, threads=1)
    cls = fit(TrainConfig(model="lenet5", data="synthetic", train_subset=64, out_dir=str(root / "cls"),
                          **common)).run_dir
    train = load_dataset(SCENES, "train", data_dir=root)
    test = load_dataset(SCENES, "test", data_dir=root)
    seg = fit(TrainConfig(task="segmentation", model="fcn32s_fastnet", data=SCENES, data_dir=str(root),
                          out_dir=str(root / "seg"), **common), train_data=train, test_data=test).run_dir
    det = fit(TrainConfig(task="detection", model="yolo_v1_fastnet", data=SCENES, data_dir=str(root),
                          out_dir=str(root / "det"), **common), train_data=train, test_data=test).run_dir
    photo = root / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((40, 48)) * 255).astype(np.uint8)).save(photo)
    return {"classification": str(cls), "segmentation": str(seg), "detection": str(det), "photo": str(photo),
            "root": str(root)}


def run_cli(argv, capsys):
    rc = main(argv)
    out, err = capsys.readouterr()
    assert "internal error" not in err and "Traceback" not in err, err
    return rc, out, err


def refused(rc, err, *words):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1, err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def test_eval_takes_the_task_from_the_checkpoint(runs, capsys):
    rc, out, _ = run_cli(["eval", "--checkpoint", runs["classification"]], capsys)
    assert rc == 0 and "top-1" in out
    rc, out, _ = run_cli(["eval", "--checkpoint", runs["segmentation"], "--data-dir", runs["root"]], capsys)
    assert rc == 0 and "mean IU" in out and "labelled pixels" in out


def test_eval_bootstrap_of_a_segmentation_run_is_refused(runs, capsys):
    rc, _, err = run_cli(["eval", "--checkpoint", runs["segmentation"], "--data-dir", runs["root"],
                          "--bootstrap", "10"], capsys)
    refused(rc, err, "--bootstrap", "segmentation")


def test_predict_cam_and_ensemble_refuse_a_segmentation_run(runs, capsys):
    seg, photo = runs["segmentation"], runs["photo"]
    refused(*run_cli(["predict", "--checkpoint", seg, photo], capsys)[::2], "cnnlab segment predict")
    refused(*run_cli(["viz", "cam", seg, photo], capsys)[::2], "segmentation", "cnnlab segment")
    refused(*run_cli(["ensemble", seg, seg, "--eval"], capsys)[::2], "segmentation", "cnnlab ensemble")


def test_segment_commands_refuse_a_classification_run(runs, capsys):
    cls = runs["classification"]
    refused(*run_cli(["segment", "eval", "--checkpoint", cls], capsys)[::2], "classification", "cnnlab eval")
    refused(*run_cli(["segment", "predict", "--checkpoint", cls, runs["photo"], "--out", runs["root"]],
                     capsys)[::2], "classification", "cnnlab predict")


def test_classification_commands_work_on_a_classification_run(runs, capsys, tmp_path):
    cls, photo = runs["classification"], runs["photo"]
    assert run_cli(["predict", "--checkpoint", cls, photo], capsys)[0] == 0
    assert run_cli(["viz", "cam", cls, photo, "-o", str(tmp_path / "cam.png")], capsys)[0] == 0
    rc, out, _ = run_cli(["ensemble", cls, cls, "--eval", "--plot", str(tmp_path / "e.png")], capsys)
    assert rc == 0 and "top-1" in out


def test_inspect_accepts_a_run_directory_of_each_task(runs, capsys):
    rc, out, _ = run_cli(["inspect", runs["classification"]], capsys)
    assert rc == 0 and "1x28x28" in out.replace(" ", "")
    rc, out, _ = run_cli(["inspect", runs["segmentation"]], capsys)
    assert rc == 0 and "1x64x64" in out.replace(" ", "")


@pytest.mark.parametrize("command", ["cv", "bag", "boost", "biasvar"])
def test_validation_commands_refuse_dense_data_and_dense_models(runs, capsys, command):
    count = {"cv": ["--folds", "2"], "bag": ["--members", "2"], "boost": ["--rounds", "2"],
             "biasvar": ["--models", "2"]}[command]
    rc, _, err = run_cli([command, "--data", SCENES, "--data-dir", runs["root"], "--model", "lenet5", "--epochs",
                          "1", "--out-dir", runs["root"] + f"/{command}", *count], capsys)
    refused(rc, err, "dense data")
    rc, _, err = run_cli([command, "--data", SCENES, "--data-dir", runs["root"], "--model", "fcn32s_fastnet",
                          "--epochs", "1", "--out-dir", runs["root"] + f"/{command}", *count], capsys)
    refused(rc, err, "segmentation")


def test_eval_and_inspect_take_a_detection_run(runs, capsys):
    rc, out, _ = run_cli(["eval", "--checkpoint", runs["detection"], "--data-dir", runs["root"]], capsys)
    assert rc == 0 and "mAP" in out
    rc, out, _ = run_cli(["inspect", runs["detection"]], capsys)
    assert rc == 0 and "1x64x64" in out.replace(" ", "")


def test_other_tasks_commands_refuse_a_detection_run(runs, capsys):
    det, photo = runs["detection"], runs["photo"]
    refused(*run_cli(["predict", "--checkpoint", det, photo], capsys)[::2], "detection", "cnnlab detect predict")
    refused(*run_cli(["viz", "cam", det, photo], capsys)[::2], "detection", "cnnlab detect")
    refused(*run_cli(["ensemble", det, det, "--eval"], capsys)[::2], "detection", "cnnlab ensemble")
    refused(*run_cli(["segment", "eval", "--checkpoint", det], capsys)[::2], "detection", "cnnlab detect eval")
    refused(*run_cli(["detect", "eval", "--checkpoint", runs["segmentation"]], capsys)[::2], "segmentation",
            "cnnlab segment eval")


def test_train_prints_each_tasks_own_final_line(runs, capsys):
    """`cnnlab train --task detection` reports mAP (the classification line used to fail on a missing top-1)."""
    rc, out, _ = run_cli(["train", "--task", "detection", "--model", "yolo_v1_fastnet", "--data", SCENES,
                          "--data-dir", runs["root"], "--epochs", "1", "--batch-size", "16", "--threads", "1",
                          "--no-plots", "--no-tensorboard", "--out-dir", runs["root"] + "/det-train"], capsys)
    assert rc == 0 and "final test mAP@0.5" in out and "pr_curves.png, detections.png" in out
