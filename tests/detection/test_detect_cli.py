"""`cnnlab detect train|eval|predict` end to end on tiny scenes, COCO photos, and one-line errors on bad input."""

import json

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli import main
from cnnlab.data import load_dataset

SCENES = "fashion-scenes:size=64,max_items=2,n_train=32,n_test=8"
TINY = ["--epochs", "1", "--batch-size", "16", "--optimizer", "adam", "--lr", "0.002", "--threads", "1",
        "--no-tensorboard", "--quiet", "--model-kwargs", '{"widths": [16, 16, 32, 32]}']


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny Faster R-CNN run trained by the CLI, shared by the eval/predict tests."""
    root = tmp_path_factory.mktemp("scenes")
    out = tmp_path_factory.mktemp("run") / "frcnn"
    assert main(["detect", "train", "--method", "faster-rcnn", "--data", SCENES, "--data-dir", str(root),
                 "--out-dir", str(out), *TINY]) == 0
    return root, out


def test_train_eval_predict(run, tmp_path, capsys):
    root, out = run
    final = json.loads((out / "result.json").read_text())["final"]
    assert main(["detect", "eval", "--checkpoint", str(out), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["map_50"] == pytest.approx(final["map_50"], abs=1e-6)  # same weights, same data, same metric
    assert ev["n_images"] == 8 and ev["classes"][0] == "background"
    assert main(["detect", "eval", "--checkpoint", str(out)]) == 0
    assert "mAP@0.5" in capsys.readouterr().out

    test = load_dataset(SCENES, "test", data_dir=root)
    small, big = tmp_path / "scene.png", tmp_path / "scene-big.png"
    Image.fromarray(test.images[0, 0].numpy()).save(small)
    Image.fromarray(test.images[0, 0].numpy()).resize((128, 96), Image.NEAREST).save(big)  # 2x wide, 1.5x high
    assert main(["detect", "predict", "--checkpoint", str(out), str(small), str(big), "--out", str(tmp_path / "p"),
                 "--score-thresh", "0", "--show", "proposals", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert [r["size"] for r in res] == [[64, 64], [128, 96]]
    assert res[0]["detections"] and res[0]["proposals"] > 0
    b0 = np.array([d["box"] for d in res[0]["detections"][:5]])
    b1 = np.array([d["box"] for d in res[1]["detections"][:5]])
    assert b1.max(0)[[2, 3]].tolist() <= [128, 96]
    # the same picture at another size: boxes mapped back to its own pixels (x * 2, y * 1.5), up to resampling
    np.testing.assert_allclose(b1[0], b0[0] * [2, 1.5, 2, 1.5], atol=6)
    for r in res:
        with Image.open(r["png"]) as im:
            assert im.size[0] >= 256 and im.mode in ("RGB", "RGBA")
    _one_line_error(capsys, ["export", str(out), "--format", "onnx", "--output", str(tmp_path / "m.onnx")],
                    "cannot be exported to onnx: proposal selection")
    _one_line_error(capsys, ["export", "faster_rcnn_fastnet", "--weights", "none", "--output",
                             str(tmp_path / "m.onnx")], "cannot be exported to onnx: proposal selection")
    assert not (tmp_path / "m.onnx").exists()


@pytest.fixture
def coco(tmp_path):
    """A COCO folder of RGB photos of two sizes (two boxes, two categories)."""
    imgs = tmp_path / "images"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    images, anns = [], []
    for i, (w, h) in enumerate([(96, 80), (120, 90), (96, 80), (120, 90)]):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(imgs / f"{i}.png")
        images.append({"id": i, "file_name": f"{i}.png", "width": w, "height": h})
        anns.append({"id": i, "image_id": i, "category_id": 1 + i % 2, "bbox": [10, 10, 40, 30], "iscrowd": 0})
    doc = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]}
    return tmp_path, doc


def _write(path, doc):
    path.write_text(json.dumps(doc))
    return str(path)


def _one_line_error(capsys, argv, match):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err


def test_bad_inputs_are_one_line(coco, tmp_path, capsys):
    folder, doc = coco
    train = ["detect", "train", "--img-size", "64", "--out-dir", str(tmp_path / "r"), *TINY, "--data"]
    bad = json.loads(json.dumps(doc))
    bad["annotations"][0]["bbox"] = [70, 10, 60, 30]  # reaches x = 130 in a 96-px-wide image
    _one_line_error(capsys, [*train, "coco:" + _write(folder / "outside.json", bad)], "outside")
    (folder / "empty.json").write_text("")
    _one_line_error(capsys, [*train, f"coco:{folder / 'empty.json'}"], "empty annotation file")
    bad = json.loads(json.dumps(doc))
    bad["annotations"][1]["category_id"] = 7
    _one_line_error(capsys, [*train, "coco:" + _write(folder / "unknown.json", bad)], "unknown category id 7")
    bad = {**doc, "annotations": []}
    _one_line_error(capsys, [*train, "coco:" + _write(folder / "nobox.json", bad)], "no boxes")
    _one_line_error(capsys, ["detect", "eval", "--checkpoint", str(tmp_path / "missing")], "does not exist")
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").rglob("*.safetensors"))


def test_a_classification_checkpoint_is_refused(tmp_path, capsys):
    from cnnlab.train import TrainConfig, fit

    r = fit(TrainConfig(model="lenet5", data="synthetic", train_subset=32, epochs=1, batch_size=16, progress="none",
                        tensorboard=False, plots=False, threads=1, eval_test=False, out_dir=str(tmp_path / "cls")))
    _one_line_error(capsys, ["detect", "eval", "--checkpoint", str(r.run_dir)], "classification checkpoint")
    img = tmp_path / "x.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(img)
    _one_line_error(capsys, ["detect", "predict", "--checkpoint", str(r.run_dir), str(img), "--out",
                             str(tmp_path / "p")], "classification checkpoint")
    _one_line_error(capsys, ["detect", "train", "--model", "resnet20", "--data", SCENES, "--data-dir",
                             str(tmp_path), "--out-dir", str(tmp_path / "x"), *TINY[:2]], "detection needs one of")


KWARGS = {"rcnn": '{"widths": [16, 32, 64], "fc_width": 64, "proposals": {"min_size": 6}}',
          "yolo": '{"widths": [16, 16, 32, 32]}'}


@pytest.mark.parametrize("method", ["rcnn", "sppnet", "fast-rcnn", "faster-rcnn", "yolo"])
def test_coco_photos_train_eval_and_predict_in_their_own_pixels(coco, tmp_path, capsys, monkeypatch, method):
    """Each of the five methods on a COCO folder of RGB photos of two sizes: train, eval, predict (boxes in the
    photo's own pixels). R-CNN/SPPNet cache their proposals under $CNNLAB_DATA when no --data-dir is given."""
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "data"))
    folder, doc = coco
    data = "coco:" + _write(folder / "photos.json", doc)
    out = tmp_path / "run"
    kwargs = KWARGS.get(method.replace("sppnet", "rcnn"), '{"widths": [16, 16, 32, 32]}')
    assert main(["detect", "train", "--method", method, "--data", data, "--img-size", "64", "--eval-test",
                 "--out-dir", str(out), *TINY[:-2], "--model-kwargs", kwargs]) == 0
    capsys.readouterr()
    assert main(["detect", "eval", "--checkpoint", str(out), "--data", data, "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["n_images"] == 4 and ev["classes"] == ["background", "cat", "dog"] and 0 <= ev["map_50"] <= 1
    assert main(["detect", "predict", "--checkpoint", str(out), str(folder / "images" / "1.png"), "--out",
                 str(tmp_path / "p"), "--score-thresh", "0", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)[0]
    assert res["size"] == [120, 90]
    boxes = np.array([d["box"] for d in res["detections"]]).reshape(-1, 4)
    assert len(boxes) and boxes[:, [0, 2]].max() <= 120 and boxes[:, [1, 3]].max() <= 90
    with Image.open(res["png"]) as im:
        assert im.mode in ("RGB", "RGBA") and im.size[0] >= 120
    cache = tmp_path / "data" / "proposals"
    assert (cache.is_dir() and any(cache.iterdir())) == (method in ("rcnn", "sppnet"))
