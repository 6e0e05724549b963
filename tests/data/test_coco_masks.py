"""COCO masks equal COCO's own decoder (faster_coco_eval = pycocotools' frPyObjects/merge/decode), pixel for pixel:
triangles, concave and multi-part polygons, compressed and uncompressed RLE, at the image's size and resized."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data import load_dataset
from cnnlab.data.coco import rasterize
from cnnlab.errors import DataError

mask_api = pytest.importorskip("faster_coco_eval.core.mask")

H, W = 30, 40
TRIANGLE = [[2.0, 3.0, 25.5, 7.25, 9.0, 27.0]]
CONCAVE = [[5, 5, 35, 5, 35, 25, 20, 12, 5, 25]]  # an arrow-head notch: the hull would be wrong
TWO_PARTS = [[1, 1, 8, 1, 8, 9, 1, 9], [20.3, 14.6, 38.9, 16.2, 30.1, 28.7]]
SQUARE = [[0, 0, 3, 0, 3, 3, 0, 3]]  # COCO: 9 pixels (the old PIL rasteriser drew 16)


def coco_decode(seg, h=H, w=W):
    """COCO's reference: frPyObjects, merge the parts, decode (a compressed RLE decodes as it is, in bytes)."""
    if isinstance(seg, dict) and isinstance(seg["counts"], str):
        return mask_api.decode(dict(seg, counts=seg["counts"].encode())).astype(bool)
    rles = mask_api.frPyObjects(seg, h, w)
    rle = mask_api.merge(rles) if isinstance(rles, list) else rles
    return mask_api.decode(rle).astype(bool)


def _rle(mask, compressed):
    enc = mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))
    if compressed:
        return {"size": [H, W], "counts": enc["counts"].decode()}
    flat = mask.T.reshape(-1)
    edges = np.flatnonzero(np.diff(np.r_[0, flat.astype(np.int8), 2]))  # run starts, first run is of zeros
    return {"size": [H, W], "counts": np.diff(np.r_[0, edges[:-1], flat.size]).tolist()}


@pytest.mark.parametrize("seg", [SQUARE, TRIANGLE, CONCAVE, TWO_PARTS], ids=["square", "triangle", "concave", "parts"])
def test_polygons_equal_coco_decoder(seg):
    ours = rasterize(seg, H, W)
    assert ours.shape == (H, W) and np.array_equal(ours, coco_decode(seg))


def test_square_has_coco_pixel_count():
    assert int(rasterize(SQUARE, H, W).sum()) == 9


@pytest.mark.parametrize("compressed", [True, False], ids=["compressed", "uncompressed"])
def test_rle_equals_coco_decoder(compressed):
    mask = np.random.default_rng(1).random((H, W)) < 0.3
    seg = _rle(mask, compressed)
    assert np.array_equal(coco_decode(seg), mask)  # the fixture itself is COCO's
    assert np.array_equal(rasterize(seg, H, W), mask)


def _write_coco(tmp_path):
    (tmp_path / "images").mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)).save(
        tmp_path / "images" / "a.png")
    crowd = np.zeros((H, W), bool)
    crowd[22:28, 30:38] = True
    segs = [(1, TRIANGLE, 0), (2, CONCAVE, 0), (1, TWO_PARTS, 0), (2, _rle(crowd, True), 1)]
    anns = [{"id": k + 1, "image_id": 1, "category_id": c, "bbox": [0, 0, 5, 5], "area": float(coco_decode(s).sum()),
             "iscrowd": crowd_flag, "segmentation": s} for k, (c, s, crowd_flag) in enumerate(segs)]
    data = {"images": [{"id": 1, "file_name": "a.png", "width": W, "height": H}],
            "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}], "annotations": anns}
    (tmp_path / "train.json").write_text(json.dumps(data))
    expected = np.zeros((H, W), np.uint8)
    for c, s, crowd_flag in sorted(segs, key=lambda t: -coco_decode(t[1]).sum()):  # larger first
        expected[coco_decode(s)] = 255 if crowd_flag else c
    return tmp_path / "train.json", expected


def test_loader_masks_equal_coco_decoder_at_size_and_resized(tmp_path):
    ann, expected = _write_coco(tmp_path)
    same = load_dataset(f"coco:{ann}")
    assert same.image_shape == (3, H, W) and torch.equal(same.masks[0], torch.from_numpy(expected))
    resized = load_dataset(f"coco:{ann}", size=(24, 32))
    want = np.array(Image.fromarray(expected).resize((32, 24), Image.NEAREST))
    assert torch.equal(resized.masks[0], torch.from_numpy(want))


def test_polygons_without_decoder_are_one_clear_error(tmp_path, monkeypatch):
    import sys

    ann, _ = _write_coco(tmp_path)
    monkeypatch.setitem(sys.modules, "faster_coco_eval", None)
    monkeypatch.setitem(sys.modules, "faster_coco_eval.core", None)
    monkeypatch.setitem(sys.modules, "faster_coco_eval.core.mask", None)
    with pytest.raises(DataError, match=r"^COCO polygon masks need faster-coco-eval.*cnnlab\[detect\]") as e:
        load_dataset(f"coco:{ann}")
    assert "\n" not in str(e.value)
    assert load_dataset(f"coco:{ann}", masks=False).masks is None
