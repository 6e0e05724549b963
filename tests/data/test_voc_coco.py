"""voc:DIR and coco:FILE.json: tiny folders written with PIL, read back exactly; every error is one clear line."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.cli import main
from cnnlab.data import DenseLoader, load_dataset
from cnnlab.data.coco import rle_counts
from cnnlab.data.voc import VOC_CLASSES
from cnnlab.errors import DataError

# ------------------------------------------------------------------------------------------------ VOC


def _palette_png(path, mask):
    im = Image.fromarray(mask.astype(np.uint8), mode="P")
    im.putpalette([v for i in range(256) for v in (i * 7 % 256, i * 13 % 256, i * 29 % 256)])
    im.save(path)


def _xml(path, w, h, objects):
    objs = "".join(f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}"
                   f"</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>" for n, b, d in objects)
    path.write_text(f"<annotation><size><width>{w}</width><height>{h}</height><depth>3</depth></size>{objs}"
                    "</annotation>")


def _image(path, w, h, seed):
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return arr


@pytest.fixture
def voc(tmp_path):
    root = tmp_path / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "Annotations", "ImageSets/Segmentation"):
        (root / d).mkdir(parents=True)
    specs = {"a": (40, 30, ".png"), "b": (40, 30, ".jpg"), "c": (50, 20, ".png")}
    masks = {}
    for k, (name, (w, h, ext)) in enumerate(specs.items()):
        _image(root / "JPEGImages" / f"{name}{ext}", w, h, seed=k)
        m = np.zeros((h, w), np.uint8)
        m[5:15, 10:30] = 15  # a person ...
        m[4, 10:30] = 255  # ... with VOC's boundary band (ignore)
        m[2:4, 0:5] = 12 if name == "c" else 1
        masks[name] = m
        _palette_png(root / "SegmentationClass" / f"{name}.png", m)
        objects = [("person", (11, 6, 30, 15), 0), ("dog" if name == "c" else "aeroplane", (1, 3, 5, 4), 1)]
        _xml(root / "Annotations" / f"{name}.xml", w, h, objects)
    (root / "ImageSets/Segmentation/train.txt").write_text("a\nc\n")
    (root / "ImageSets/Segmentation/val.txt").write_text("b\n")
    return tmp_path, root, masks


def test_voc_round_trip(voc):
    top, root, masks = voc
    train = load_dataset(f"voc:{top}", size=(30, 40))
    assert len(train) == 2 and train.image_shape == (3, 30, 40) and train.classes == list(VOC_CLASSES)
    assert torch.equal(train.masks[0], torch.from_numpy(masks["a"]))  # same size: the palette indices exactly
    resized = np.array(Image.fromarray(masks["c"]).resize((40, 30), Image.NEAREST))
    assert torch.equal(train.masks[1], torch.from_numpy(resized))
    assert set(train.masks[1].unique().tolist()) == {0, 12, 15, 255}
    assert torch.equal(train.images[0],
                       torch.from_numpy(np.array(Image.open(root / "JPEGImages/a.png"))).permute(2, 0, 1))
    # VOC's 1-based inclusive boxes -> continuous xyxy; c (50x20) scaled by (40/50, 30/20)
    assert train.boxes[0].tolist() == [[10.0, 5.0, 30.0, 15.0], [0.0, 2.0, 5.0, 4.0]]
    assert torch.allclose(train.boxes[1], torch.tensor([[8.0, 7.5, 24.0, 22.5], [0.0, 3.0, 4.0, 6.0]]))
    assert train.labels[0].tolist() == [15, 1] and train.labels[1].tolist() == [15, 12]
    assert train.extras["difficult"][0].tolist() == [False, True]
    val = load_dataset(f"voc:{root}", split="val", size=(30, 40))
    assert len(val) == 1 and val.meta["ids"] == ["b"] and val.mean == pytest.approx(train.mean)  # train's stats
    x, t = next(iter(DenseLoader(train, batch_size=2, augment="crop:4,flip")))
    assert x.shape == (2, 3, 30, 40) and t["mask"].shape == (2, 30, 40) and len(t["boxes"]) == 2


def test_voc_default_size_labels_file_and_masks_only(voc):
    top, root, _ = voc
    (root / "ImageSets/Segmentation/train.txt").write_text("a\nb\nc\n")
    ds = load_dataset(f"voc:{root}")
    assert ds.image_shape == (3, 30, 40)  # the most common size
    (root / "labels.txt").write_text("background\n" + "\n".join(VOC_CLASSES[1:]) + "\n")
    assert load_dataset(f"voc:{root}").classes == list(VOC_CLASSES)
    only = load_dataset(f"voc:{root}", boxes=False)
    assert only.has_masks and not only.has_boxes


def test_voc_errors(voc, tmp_path):
    top, root, _ = voc
    with pytest.raises(DataError, match="folder not found"):
        load_dataset(f"voc:{tmp_path / 'nope'}")
    with pytest.raises(DataError, match="no JPEGImages"):
        load_dataset(f"voc:{root / 'Annotations'}")
    ann = root / "Annotations"
    _xml(ann / "a.xml", 40, 30, [("person", (11, 6, 45, 15), 0)])
    with pytest.raises(DataError, match=r"a\.xml: box 0 \[10.0, 5.0, 45.0, 15.0\].*outside the 40x30 image"):
        load_dataset(f"voc:{root}")
    _xml(ann / "a.xml", 40, 30, [("unicorn", (1, 1, 5, 5), 0)])
    with pytest.raises(DataError, match="unknown class 'unicorn'"):
        load_dataset(f"voc:{root}")
    (ann / "a.xml").write_text("")
    with pytest.raises(DataError, match=r"a\.xml: empty annotation file"):
        load_dataset(f"voc:{root}")
    (ann / "a.xml").unlink()
    with pytest.raises(DataError, match="annotation file not found"):
        load_dataset(f"voc:{root}")
    m = np.zeros((30, 40), np.uint8)
    m[0, 0] = 30
    _palette_png(root / "SegmentationClass/a.png", m)
    with pytest.raises(DataError, match="mask value 30 but only 21 classes"):
        load_dataset(f"voc:{root}", boxes=False)
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(root / "SegmentationClass/a.png")
    with pytest.raises(DataError, match="mask mode 'RGB'"):
        load_dataset(f"voc:{root}", boxes=False)
    with pytest.raises(DataError, match="no test.txt or val.txt"):
        (root / "ImageSets/Segmentation/val.txt").unlink()
        load_dataset(f"voc:{root}", split="test")


def test_voc_unreadable_image_is_skipped(voc):
    top, root, _ = voc
    (root / "JPEGImages/c.png").write_bytes(b"\x89PNG garbage")
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        ds = load_dataset(f"voc:{root}")
    assert len(ds) == 1 and ds.meta["ids"] == ["a"] and len(ds.meta["skipped"]) == 1
    assert ds.boxes[0].shape == (2, 4) and ds.masks.shape == (1, 30, 40)


# ----------------------------------------------------------------------------------------------- COCO

def _rle_string(mask):
    """pycocotools' rleToString: column-major runs, deltas from two back, 5-bit groups + 48."""
    flat = mask.T.reshape(-1).astype(np.uint8)
    runs, cur, n = [], 0, 0
    for v in flat:
        if v != cur:
            runs.append(n)
            cur, n = v, 0
        n += 1
    runs.append(n)
    out = []
    for i, x in enumerate(runs):
        if i > 2:
            x -= runs[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = not ((c & 0x10 == 0 and x == 0) or (c & 0x10 and x == -1))
            out.append(chr(c + 48 + (0x20 if more else 0)))
    return "".join(out), runs


def _coco(root, images=("x.png", "y.png", "z.png")):
    """Polygons in COCO's continuous coordinates: the box [x, y, w, h] = [10, 5, 20, 10] is the polygon
    (10, 5)-(30, 15), which covers pixels 10..29 x 5..14 (COCO's decoder; see test_coco_masks.py)."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    for k, f in enumerate(images):
        _image(root / "images" / f, 40 if k < 2 else 60, 30, seed=k)
    crowd = np.zeros((30, 40), bool)
    crowd[20:25, 2:9] = True
    rle, _ = _rle_string(crowd)
    data = {
        "images": [{"id": 10 + k, "file_name": f, "width": 40 if k < 2 else 60, "height": 30}
                   for k, f in enumerate(images)],
        "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 3, "bbox": [10, 5, 20, 10], "area": 200, "iscrowd": 0,
             "segmentation": [[10, 5, 30, 5, 30, 15, 10, 15]]},
            {"id": 2, "image_id": 10, "category_id": 7, "bbox": [0, 0, 4, 4], "area": 16, "iscrowd": 0,
             "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4]]},
            {"id": 3, "image_id": 10, "category_id": 7, "bbox": [2, 20, 7, 5], "area": 35, "iscrowd": 1,
             "segmentation": {"size": [30, 40], "counts": rle}},
            {"id": 4, "image_id": 12, "category_id": 7, "bbox": [30, 0, 30, 30], "area": 900, "iscrowd": 0,
             "segmentation": [[30, 0, 60, 0, 60, 30, 30, 30]]},
        ]}
    return data


def _write(path, data):
    path.write_text(json.dumps(data))
    return path


def test_coco_round_trip(tmp_path):
    ann = _write(tmp_path / "train.json", _coco(tmp_path))
    ds = load_dataset(f"coco:{ann}", size=30)
    assert ds.classes == ["background", "cat", "dog"] and ds.image_shape == (3, 30, 30) and len(ds) == 3
    sx = 30 / 40
    assert torch.allclose(ds.boxes[0], torch.tensor([[10 * sx, 5, 30 * sx, 15], [0, 0, 4 * sx, 4]]))
    assert ds.labels[0].tolist() == [1, 2] and ds.boxes[1].shape == (0, 4)  # crowd: no box; y has none
    assert torch.allclose(ds.boxes[2], torch.tensor([[15.0, 0, 30, 30]])) and ds.labels[2].tolist() == [2]
    assert ds.extras["annotation_id"][0].tolist() == [1, 2]
    full = load_dataset(f"coco:{ann}", size=(30, 40))  # masks at the original size, to check the rasteriser
    m = full.masks[0]
    assert (m[5:15, 10:30] == 1).all() and (m[0:4, 0:4] == 2).all() and (m[20:25, 2:9] == 255).all()
    assert int((m == 1).sum()) == 200 and int((m == 0).sum()) == 1200 - 200 - 16 - 35
    assert full.masks[1].eq(0).all()
    x, t = next(iter(DenseLoader(full, batch_size=3, shuffle=False)))
    assert x.shape == (3, 3, 30, 40) and [b.shape[0] for b in t["boxes"]] == [2, 0, 1]


def test_rle_decoder_matches_encoder():
    rng = np.random.default_rng(0)
    mask = rng.random((17, 23)) < 0.4
    s, runs = _rle_string(mask)
    assert rle_counts({"counts": s}) == runs and rle_counts({"counts": runs}) == runs
    from cnnlab.data.coco import rasterize

    assert np.array_equal(rasterize({"size": [17, 23], "counts": s}, 17, 23), mask)
    fce = pytest.importorskip("faster_coco_eval.core.mask")
    enc = fce.encode(np.asfortranarray(mask.astype(np.uint8)))
    counts = enc["counts"].decode() if isinstance(enc["counts"], bytes) else enc["counts"]
    assert counts == s


def test_coco_splits_from_folder_and_sibling(tmp_path, capsys):
    data = _coco(tmp_path)
    (tmp_path / "annotations").mkdir()
    _write(tmp_path / "annotations" / "instances_train.json", data)
    val = dict(data, images=data["images"][:1], annotations=data["annotations"][:2])
    _write(tmp_path / "annotations" / "instances_val.json", val)
    test = load_dataset(f"coco:{tmp_path}", split="test", size=30)  # test falls back to val
    assert len(test) == 1 and test.meta["annotations"].endswith("instances_val.json")
    train = load_dataset(f"coco:{tmp_path / 'annotations' / 'instances_train.json'}", size=30)
    assert test.mean == pytest.approx(train.mean, abs=1e-6)  # the training split's statistics
    assert len(load_dataset(f"coco:{tmp_path / 'annotations' / 'instances_train.json'}", split="test")) == 1
    assert main(["data", "info", f"coco:{tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "instances_train.json: 3" in out and "instances_val.json: 1" in out and "boxes (3, 1.00 per image)" in out


def test_coco_errors(tmp_path):
    data = _coco(tmp_path)
    with pytest.raises(DataError, match="annotation file not found"):
        load_dataset(f"coco:{tmp_path / 'none.json'}")
    (tmp_path / "empty.json").write_text("")
    with pytest.raises(DataError, match="empty annotation file"):
        load_dataset(f"coco:{tmp_path / 'empty.json'}")
    with pytest.raises(DataError, match="empty annotation file"):
        load_dataset(f"coco:{_write(tmp_path / 'none_.json', dict(data, images=[]))}")
    bad = json.loads(json.dumps(data))
    bad["annotations"][1]["bbox"] = [35, 0, 10, 10]
    with pytest.raises(DataError, match=r"image x\.png \(40x30\): box \[x, y, w, h\] = \[35.0, 0.0, 10.0, 10.0\]"):
        load_dataset(f"coco:{_write(tmp_path / 'a.json', bad)}")
    bad = json.loads(json.dumps(data))
    bad["annotations"][0]["category_id"] = 9
    with pytest.raises(DataError, match="annotation 1 on image x.png has unknown category id 9; known: 3, 7"):
        load_dataset(f"coco:{_write(tmp_path / 'b.json', bad)}")
    bad = json.loads(json.dumps(data))
    bad["annotations"][0]["image_id"] = 99
    with pytest.raises(DataError, match="unknown image id 99"):
        load_dataset(f"coco:{_write(tmp_path / 'c.json', bad)}")
    elsewhere = tmp_path / "sub" / "deeper"
    elsewhere.mkdir(parents=True)
    with pytest.raises(DataError, match="cannot find its images"):
        load_dataset(f"coco:{_write(elsewhere / 'd.json', data)}")
    (tmp_path / "images" / "y.png").write_bytes(b"broken")
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        ds = load_dataset(f"coco:{_write(tmp_path / 'e.json', data)}", size=30)
    assert len(ds) == 2 and ds.meta["image_ids"] == [10, 12]


def test_cli_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "empty.json").write_text("")
    assert main(["data", "info", f"coco:{tmp_path / 'empty.json'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "empty annotation file" in err
    assert main(["data", "info", f"voc:{tmp_path / 'missing'}"]) == 2
    assert "folder not found" in capsys.readouterr().err


# --------------------------------------------------------------------------- scenes written and read back

def test_scenes_exported_as_voc_and_coco_read_back_exactly(tmp_path, capsys):
    name = "fashion-scenes:size=64,n_train=12,n_test=6"
    assert main(["data", "export", name, str(tmp_path / "voc"), "--data-dir", str(tmp_path)]) == 0
    assert main(["data", "export", name, str(tmp_path / "coco"), "--format", "coco", "--data-dir",
                 str(tmp_path)]) == 0
    assert "fashion-scenes-test: 6 images" in capsys.readouterr().out
    for split in ("train", "test"):
        ref = load_dataset(name, split=split, data_dir=tmp_path)
        voc = load_dataset(f"voc:{tmp_path / 'voc'}", split=split)
        coco = load_dataset(f"coco:{tmp_path / 'coco'}", split=split)
        for ds in (voc, coco):
            assert ds.classes == ref.classes and ds.image_shape == (1, 64, 64) and torch.equal(ds.images, ref.images)
            assert all(torch.equal(a, b) for a, b in zip(ds.boxes, ref.boxes))
            assert all(torch.equal(a, b) for a, b in zip(ds.labels, ref.labels))
        assert torch.equal(voc.masks, ref.masks) and coco.masks is None
    img = Image.open(tmp_path / "voc" / "SegmentationClass" / "train_000000.png")
    assert img.mode == "P" and img.getpalette()[15 * 3:15 * 3 + 3] == [192, 128, 128]  # VOC's person colour
