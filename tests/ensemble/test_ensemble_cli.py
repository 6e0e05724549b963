"""Every command end to end on a user's own image folder (Fashion-MNIST images saved as PNG files)."""

import json

import pytest
import torch
from PIL import Image

from cnnlab.cli import main

FAST = ["--model", "lenet5_modern", "--epochs", "1", "--batch-size", "32", "--optimizer", "adam", "--lr", "0.003",
        "--threads", "1", "--progress", "none", "--no-plots", "--no-tensorboard"]


def _write(folder, images, labels, classes):
    for i, (img, y) in enumerate(zip(images, labels.tolist())):
        d = folder / classes[y].replace("/", "-")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[0].numpy()).save(d / f"{i:04d}.png")


@pytest.fixture(scope="module")
def folders(fmnist, tmp_path_factory):
    """``split/`` with train/ (400 images) and test/ (100); ``flat/`` with 200 images and no splits."""
    root = tmp_path_factory.mktemp("folders")
    tr, te = fmnist.train, fmnist.test
    _write(root / "split" / "train", tr.images[:400], tr.labels[:400], tr.classes)
    _write(root / "split" / "test", te.images[:100], te.labels[:100], te.classes)
    _write(root / "flat", tr.images[400:600], tr.labels[400:600], tr.classes)
    return root


def test_cv_on_a_folder(folders, tmp_path, capsys):
    out = tmp_path / "cv"
    assert main(["cv", "--folds", "2", "--data", f"imagefolder:{folders / 'split'}", *FAST, "--out-dir", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2-fold stratified cross-validation" in text and "mean" in text
    saved = json.loads((out / "cv.json").read_text())
    assert [f["n_val"] for f in saved["folds"]] == [200, 200] and (out / "cv.png").stat().st_size > 1000


def test_bag_then_ensemble_the_run_directories(folders, tmp_path, capsys, monkeypatch):
    data = f"imagefolder:{folders / 'split'}"
    out = tmp_path / "bag"
    assert main(["bag", "--members", "3", "--vote", "hard", "--data", data, *FAST, "--out-dir", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ensemble (hard)" in text and "gain over mean member" in text and (out / "bag.png").is_file()
    bagged = json.loads((out / "bag.json").read_text())
    assert bagged["n"] == 100 and len(bagged["members"]) == 3
    runs = [str(out / f"member-{i:02d}") for i in range(3)]
    assert main(["ensemble", *runs]) == 0  # no --eval: the compatibility listing
    assert "3 compatible members" in capsys.readouterr().out
    plot = tmp_path / "ens.png"
    assert main(["ensemble", *runs, "--eval", "--vote", "hard", "--json", "--plot", str(plot)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["top1"] == bagged["top1"] and again["gain"] == pytest.approx(bagged["gain"])
    assert [m["top1"] for m in again["members"]] == [m["top1"] for m in bagged["members"]]
    assert plot.stat().st_size > 1000
    monkeypatch.chdir(tmp_path)  # the default figure goes to ./runs/ensemble-TIMESTAMP.png
    assert main(["ensemble", *runs, "--eval", "--tta", "flip"]) == 0
    assert "TTA flip" in capsys.readouterr().out
    assert len(list((tmp_path / "runs").glob("ensemble-*.png"))) == 1


def test_bag_on_a_folder_without_test_split_uses_a_holdout(folders, tmp_path, capsys):
    data = f"imagefolder:{folders / 'flat'}"
    out = tmp_path / "flatbag"
    assert main(["bag", "--members", "2", "--holdout", "0.25", "--data", data, *FAST, "--out-dir", str(out),
                 "--json"]) == 0
    bagged = json.loads(capsys.readouterr().out)
    assert bagged["n"] == 50 and "hold-out" in bagged["data"]
    runs = [str(out / f"member-{i:02d}") for i in range(2)]
    assert main(["ensemble", *runs, "--eval", "--holdout", "0.25", "--json", "--plot", str(tmp_path / "p.png")]) == 0
    assert json.loads(capsys.readouterr().out)["top1"] == bagged["top1"]


def test_boost_and_biasvar_on_a_folder(folders, tmp_path, capsys):
    data = f"imagefolder:{folders / 'split'}"
    out = tmp_path / "boost"
    assert main(["boost", "--rounds", "2", "--mode", "resample", "--data", data, *FAST, "--out-dir", str(out)]) == 0
    text = capsys.readouterr().out
    assert "round 1: weighted error" in text and "alpha" in text and (out / "boost.png").is_file()
    rounds = (out / "rounds.csv").read_text().splitlines()
    assert rounds[0].startswith("round,run_dir,weighted_error,alpha") and len(rounds) >= 2
    out = tmp_path / "bv"
    assert main(["biasvar", "--models", "2", "--sweep", "epochs=1,2", "--data", data, *FAST, "--out-dir", str(out),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [p["value"] for p in result["points"]] == [1, 2] and (out / "biasvar.png").is_file()
    for p in result["points"]:
        assert p["loss"] == pytest.approx(p["bias"] + p["net_variance"], abs=1e-12)
    assert (out / "epochs=2" / "model-01" / "last.safetensors").is_file()


@pytest.mark.slow
def test_workers_train_members_in_processes(folders, tmp_path, capsys):
    data = f"imagefolder:{folders / 'split'}"
    out = tmp_path / "w"
    assert main(["bag", "--members", "2", "--workers", "2", "--data", data, *FAST, "--out-dir", str(out),
                 "--json"]) == 0
    par = json.loads(capsys.readouterr().out)
    assert main(["bag", "--members", "2", "--data", data, *FAST, "--out-dir", str(tmp_path / "s"), "--json"]) == 0
    seq = json.loads(capsys.readouterr().out)
    # the same members whichever process trains them (seeded, one thread each)
    assert [m["top1"] for m in par["members"]] == [m["top1"] for m in seq["members"]]
    assert par["top1"] == seq["top1"]
    assert torch.get_num_threads() == 1
