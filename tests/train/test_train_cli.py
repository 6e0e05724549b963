"""`cnnlab train / eval / predict` end to end on the synthetic set, and one-line errors for bad input."""

import json

import pytest
from PIL import Image

from cnnlab.cli import main

TRAIN = ["train", "--model", "lenet5_modern", "--data", "synthetic", "--batch-size", "128", "--threads", "1",
         "--optimizer", "adam", "--lr", "0.003", "--progress", "none"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    (base / "run.yaml").write_text("epochs: 3\nlr: 0.5\nschedule: cosine\nlabel_smoothing: 0.05\n")
    out = base / "run"
    # the YAML says lr 0.5; the flag (0.003) wins
    assert main([*TRAIN, "--config", str(base / "run.yaml"), "--epochs", "2", "--out-dir", str(out)]) == 0
    return out


def test_train_writes_the_run_directory(run_dir):
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.yaml", "metrics.csv", "curves.png", "confusion_matrix.png", "best.safetensors",
            "last.safetensors", "result.json", "tb"} <= names
    assert any(p.name.startswith("events.out.tfevents") for p in (run_dir / "tb").iterdir())
    import yaml

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert (cfg["lr"], cfg["epochs"], cfg["schedule"], cfg["label_smoothing"]) == (0.003, 2, "cosine", 0.05)
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,lr,train_loss") and len(rows) == 3
    result = json.loads((run_dir / "result.json").read_text())
    assert result["final"]["split"] == "test"
    assert result["final"]["top1"] > 0.6  # measured 0.802 (2 epochs, seed 0); chance is 0.1


def test_eval_and_predict(run_dir, tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(run_dir), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    result = json.loads((run_dir / "result.json").read_text())
    assert metrics["top1"] == pytest.approx(result["final"]["top1"]) and metrics["n"] == 500
    assert main(["eval", "--checkpoint", str(run_dir / "last.safetensors"), "--tta", "flip"]) == 0
    assert "top-1" in capsys.readouterr().out

    from cnnlab.data import load_dataset

    test = load_dataset("synthetic", "test")
    paths = []
    for i in range(2):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(test.images[i, 0].numpy()).save(p)
        paths.append(str(p))
    assert main(["predict", "--checkpoint", str(run_dir), *paths, "--topk", "2", "--json"]) == 0
    preds = json.loads(capsys.readouterr().out)
    assert len(preds) == 2 and len(preds[0]["top"]) == 2
    assert preds[0]["top"][0]["class"] in test.classes
    assert preds[0]["top"][0]["prob"] >= preds[0]["top"][1]["prob"]


def test_resume_cli_refuses_changed_options(run_dir, capsys):
    assert main(["train", "--resume", str(run_dir), "--lr", "0.1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot change lr when resuming" in err


@pytest.mark.parametrize("argv,message", [
    (["train", "--model", "nosuchnet", "--data", "synthetic"], "unknown model 'nosuchnet'"),
    (["train", "--data", "nosuchdata"], "unknown dataset 'nosuchdata'"),
    (["train", "--optimizer", "lbfgs"], "optimizer='lbfgs' is not one of"),
    (["train", "--recipe", "fast"], "unknown recipe 'fast'"),
    (["train", "--model-kwargs", "{bad"], "--model-kwargs must be a JSON object"),
    (["train", "--config", "/nonexistent.yaml"], "config file /nonexistent.yaml does not exist"),
    (["train", "--data", "mnist", "--augment", "flip", "--data-dir", "/nonexistent"], "mnist"),
    (["eval", "--checkpoint", "/nonexistent.safetensors"], "does not exist"),
    (["predict", "--checkpoint", "/nonexistent", "x.png"], "does not exist"),
])
def test_bad_input_is_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_corrupt_checkpoint_and_bad_image_are_one_line(run_dir, tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes((run_dir / "last.safetensors").read_bytes()[:100])
    assert main(["eval", "--checkpoint", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a readable checkpoint" in err
    notimg = tmp_path / "notimage.png"
    notimg.write_text("hello")
    assert main(["predict", "--checkpoint", str(run_dir), str(notimg)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read image" in err
