"""COCO-style annotation files (Lin et al. 2014, https://cocodataset.org/#format-data) -> :class:`DenseDataset`.

``load_dataset("coco:FILE.json", split)`` or ``"coco:DIR"``. The JSON holds ``images`` (``id``,
``file_name``, ``width``, ``height``), ``annotations`` (``image_id``, ``category_id``, ``bbox`` =
``[x, y, w, h]`` in pixels, ``iscrowd``, optional ``segmentation``: polygons or RLE) and ``categories``
(``id``, ``name``). Category ids, in increasing order, become classes ``1..K-1`` (0 is background).

* Boxes become xyxy ``[x, y, x + w, y + h]``; crowd annotations give no box (as in torchvision's
  detection reference). A box reaching more than 1 px outside its image, a negative size, an unknown
  category or image id, and an empty file are each one :class:`DataError` naming the image and box;
  zero-area boxes are dropped and counted (``meta["dropped_boxes"]``).
* ``masks=True`` (default: when every annotation has a segmentation) also rasterises the polygons and
  RLEs into a class mask, larger objects first so smaller ones stay visible; crowd regions are 255 (ignore).
  Polygons are decoded by COCO's own code (faster_coco_eval, the ``detect`` extra), pixel for pixel.
* Images: ``images=DIR``, else the first of ``DIR/images``, COCO's ``../val2017`` for
  ``annotations/instances_val2017.json``, and the JSON's own folder that holds the first image.
  Every image is resized to one ``size`` (default the most common) -- image bilinear, mask nearest,
  boxes scaled. Unreadable or missing images are skipped with one warning (``meta["skipped"]``).
* Splits: ``coco:DIR`` looks for ``DIR/annotations/instances_<split>*.json`` or ``DIR/<split>.json``
  (``test`` falls back to ``val``); ``coco:FILE.json`` is the train split and, when its name says
  ``train``, the sibling with ``val`` (or ``test``) in its place is the test split; a file whose name does
  not say ``train`` serves any split (e.g. ``coco:instances_val2017.json`` for evaluation).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from cnnlab.data.arrays import IGNORE, DenseDataset, check_boxes
from cnnlab.data.images import (
    pick_channels,
    pick_size,
    png_bytes,
    read_images,
    sample_stats,
    scale_boxes,
    scan_images,
    skip_warning,
)
from cnnlab.errors import DataError

_TOLERANCE = 1.0  # px a box may reach outside its image (then clipped): COCO's own boxes do, slightly


def annotation_file(path, split: str) -> Path:
    """The JSON of ``split`` for ``coco:PATH`` (see the module docstring)."""
    path = Path(path).expanduser()
    alias = {"train": ("train",), "val": ("val",), "test": ("test", "val"), "training": ("train",)}.get(split)
    if alias is None:
        raise DataError(f"unknown split {split!r} for a COCO dataset; use train, val or test")
    if path.is_dir():
        for s in alias:
            for pattern in (f"annotations/instances_{s}*.json", f"annotations/{s}*.json", f"{s}.json",
                            f"instances_{s}*.json"):
                found = sorted(path.glob(pattern))
                if found:
                    return found[0]
        raise DataError(f"{path}: no annotations/instances_{alias[0]}*.json or {alias[0]}.json for split "
                        f"{split!r} (accepted: a COCO JSON file or a folder holding them)")
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found (accepted: a COCO-style JSON file or folder)")
    if split == "train" or "train" not in path.name:
        return path
    for s in alias:
        sibling = path.with_name(path.name.replace("train", s))
        if sibling.is_file():
            return sibling
    raise DataError(f"{path}: no {split} split beside it ({path.name.replace('train', alias[-1])} not found); "
                    f"pass the {split} annotations as coco:FILE.json")


def _read_json(path: Path) -> dict:
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty annotation file")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not data.get("images"):
        raise DataError(f"{path}: empty annotation file (no 'images'); accepted: COCO JSON with images, "
                        "annotations and categories")
    if not isinstance(data.get("categories"), list) or not data["categories"]:
        raise DataError(f"{path}: no 'categories' (a list of {{id, name}})")
    return data


def _images_dir(ann: Path, first: str, images) -> Path:
    if images is not None:
        d = Path(images).expanduser()
        if not d.is_dir():
            raise DataError(f"{d}: images folder not found")
        return d
    stem = ann.stem.split("_", 1)[1] if ann.stem.startswith("instances_") else ann.stem
    candidates = [ann.parent / "images", ann.parent.parent / stem, ann.parent / stem, ann.parent.parent / "images",
                  ann.parent, ann.parent / "images" / stem, ann.parent.parent / "images" / stem]
    for d in candidates:
        if (d / first).is_file():
            return d
    raise DataError(f"{ann}: cannot find its images (looked for {first} in "
                    f"{', '.join(str(c) for c in dict.fromkeys(candidates))}); pass images=DIR")


def rle_counts(seg: dict) -> list[int]:
    """The run lengths of an RLE, uncompressed (a list) or compressed (COCO's string; pycocotools' rleFrString)."""
    counts = seg["counts"]
    if isinstance(counts, list):
        return [int(c) for c in counts]
    s = counts.encode() if isinstance(counts, str) else bytes(counts)
    out: list[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            c = s[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def rasterize(seg, h: int, w: int) -> np.ndarray:
    """A COCO segmentation (polygons ``[[x0, y0, x1, y1, …], …]`` or RLE) as a bool ``[h, w]`` mask.

    Polygons go through COCO's own decoder (``frPyObjects`` + ``merge`` + ``decode`` of faster_coco_eval, the
    pycocotools C code), so a mask is COCO's pixel for pixel: a vertex is a point in continuous coordinates and
    ``[0, 0, 3, 0, 3, 3, 0, 3]`` covers 3 x 3 pixels. RLEs decode here (column-major runs; tested equal).
    """
    if isinstance(seg, list):
        polys = [[float(v) for v in p] for p in seg if len(p) >= 6]
        if not polys:
            return np.zeros((h, w), bool)
        mask_api = _coco_mask_api()
        return mask_api.decode(mask_api.merge(mask_api.frPyObjects(polys, h, w))).astype(bool)
    if isinstance(seg, dict) and "counts" in seg:
        rh, rw = (int(v) for v in seg.get("size", (h, w)))
        runs = rle_counts(seg)
        if sum(runs) != rh * rw:
            raise ValueError(f"RLE covers {sum(runs)} pixels, size says {rh}x{rw}")
        flat = np.repeat(np.arange(len(runs)) % 2 == 1, runs)
        m = flat.reshape(rw, rh).T  # column-major, as pycocotools stores it
        if (rh, rw) != (h, w):
            raise ValueError(f"RLE of size {rh}x{rw} for a {h}x{w} image")
        return m
    raise ValueError("segmentation is neither polygons nor an RLE")


def _coco_mask_api():
    """faster_coco_eval's mask module (the ``detect`` extra), or one DataError saying how to get it."""
    try:
        from faster_coco_eval.core import mask
    except ImportError:
        raise DataError("COCO polygon masks need faster-coco-eval (COCO's own decoder): pip install "
                        "'cnnlab[detect]' (or, in Python, load_dataset(..., masks=False) for boxes only)") from None
    return mask


def load_coco(path, split: str = "train", images=None, size: int | tuple[int, int] | None = None,
              channels: int | None = None, masks: bool | None = None) -> DenseDataset:
    """A COCO-style annotation file as a :class:`DenseDataset` with boxes (and masks; see the module docstring)."""
    from PIL import Image

    ann = annotation_file(path, split)
    data = _read_json(ann)
    ids, cat_index, classes = _categories(ann, data)
    try:
        imgs = [(int(im["id"]), str(im["file_name"]), int(im.get("height", 0)), int(im.get("width", 0)))
                for im in data["images"]]
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{ann}: each image needs an 'id' and a 'file_name'") from None
    by_id = {iid: k for k, (iid, *_rest) in enumerate(imgs)}
    folder = _images_dir(ann, imgs[0][1], images)
    paths = [folder / fn for _, fn, _, _ in imgs]
    infos = [info if p.is_file() else None for p, info in zip(paths, scan_images(paths))]
    if all(i is None for i in infos):
        raise DataError(f"{folder}: none of the {len(imgs)} images of {ann.name} is readable")
    hw = pick_size(size, infos)
    ch = pick_channels(channels, infos)
    per_image: list[list[dict]] = [[] for _ in imgs]
    for a in data.get("annotations") or []:
        iid, cid = a.get("image_id"), a.get("category_id")
        if iid not in by_id:
            raise DataError(f"{ann}: annotation {a.get('id')} refers to unknown image id {iid}")
        if cid not in cat_index:
            raise DataError(f"{ann}: annotation {a.get('id')} on image {imgs[by_id[iid]][1]} has unknown category id "
                            f"{cid}; known: {', '.join(map(str, ids))}")
        per_image[by_id[iid]].append(a)
    use_masks = masks if masks is not None else bool(data.get("annotations")) and all(
        a.get("segmentation") for lst in per_image for a in lst)
    pixels, failed = read_images(paths, hw, ch)
    bad = set(failed) | {i for i, info in enumerate(infos) if info is None}
    keep = [i for i in range(len(imgs)) if i not in bad]
    skipped = [str(paths[i]) for i in sorted(bad)]
    skip_warning(folder, skipped)
    box_list, label_list, mask_list, ann_ids = [], [], [], []
    dropped = 0
    for i in keep:
        fname, (h0, w0) = imgs[i][1], infos[i][0]
        boxes, labels, aids, n_dropped = _image_boxes(ann, fname, per_image[i], (h0, w0), cat_index)
        dropped += n_dropped
        b = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        lb = torch.tensor(labels, dtype=torch.int64)
        check_boxes(b, lb, (h0, w0), len(classes), where=f"{ann}: image {fname}")
        box_list.append(scale_boxes(b, (h0, w0), hw))
        label_list.append(lb)
        ann_ids.append(torch.tensor(aids, dtype=torch.int64))
        if use_masks:
            im = Image.fromarray(_image_mask(ann, fname, per_image[i], (h0, w0), cat_index))
            if im.size != (hw[1], hw[0]):
                im = im.resize((hw[1], hw[0]), Image.NEAREST)
            mask_list.append(np.asarray(im, dtype=np.uint8))
    if dropped:
        warnings.warn(f"{ann}: dropped {dropped} zero-area box(es)", UserWarning, stacklevel=2)
    mean, std = _train_split_stats(path, split, ann, images, hw, ch)
    return DenseDataset(
        pixels[keep], torch.from_numpy(np.stack(mask_list)) if use_masks else None, box_list, label_list,
        classes, f"coco:{ann}", mean, std, extras={"annotation_id": ann_ids},
        meta={"annotations": str(ann), "images": str(folder), "skipped": skipped, "dropped_boxes": dropped,
              "size": hw, "image_ids": [imgs[i][0] for i in keep]})


def _categories(ann: Path, data: dict) -> tuple[list[int], dict[int, int], list[str]]:
    """(sorted category ids, id -> class index 1..K, class names with background first)."""
    cats = data["categories"]
    try:
        ids = sorted(int(c["id"]) for c in cats)
        names = {int(c["id"]): str(c["name"]) for c in cats}
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{ann}: each category needs an integer 'id' and a 'name'") from None
    if len(set(ids)) != len(ids):
        raise DataError(f"{ann}: duplicate category ids")
    return ids, {cid: k + 1 for k, cid in enumerate(ids)}, ["background", *(names[c] for c in ids)]


def _image_boxes(ann: Path, fname: str, anns: list[dict], hw: tuple[int, int], cat_index: dict[int, int]):
    """One image's non-crowd boxes as xyxy clipped to the image, in the file's order -> (boxes, labels,
    annotation ids, number of zero-area boxes dropped); a box outside the image is an error."""
    h0, w0 = hw
    boxes, labels, aids, dropped = [], [], [], 0
    for a in anns:
        if a.get("iscrowd", 0):
            continue
        try:
            x, y, bw, bh = (float(v) for v in a["bbox"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{ann}: annotation {a.get('id')} on {fname} has no bbox [x, y, w, h]") from None
        if bw < 0 or bh < 0 or x < -_TOLERANCE or y < -_TOLERANCE or x + bw > w0 + _TOLERANCE or \
                y + bh > h0 + _TOLERANCE:
            raise DataError(f"{ann}: image {fname} ({w0}x{h0}): box [x, y, w, h] = {[x, y, bw, bh]} "
                            f"(annotation {a.get('id')}) lies outside the image or has a negative size")
        x0, y0 = max(x, 0.0), max(y, 0.0)
        x1, y1 = min(x + bw, float(w0)), min(y + bh, float(h0))
        if x1 <= x0 or y1 <= y0:
            dropped += 1
            continue
        boxes.append([x0, y0, x1, y1])
        labels.append(cat_index[a["category_id"]])
        aids.append(int(a.get("id", -1)))
    return boxes, labels, aids, dropped


def _image_mask(ann: Path, fname: str, anns: list[dict], hw: tuple[int, int], cat_index: dict[int, int]) -> np.ndarray:
    """One image's class mask at its own size: polygons/RLE rasterised, larger objects first so that smaller
    ones stay visible; crowd regions are IGNORE."""
    canvas = np.zeros(hw, np.uint8)
    for a in sorted(anns, key=lambda a: -float(a.get("area") or 0)):
        if a.get("segmentation"):
            try:
                region = rasterize(a["segmentation"], *hw)
            except DataError:
                raise
            except (ValueError, KeyError, TypeError, RuntimeError) as e:
                raise DataError(f"{ann}: annotation {a.get('id')} on {fname}: bad segmentation ({e})") from None
            canvas[region] = IGNORE if a.get("iscrowd", 0) else cat_index[a["category_id"]]
    return canvas


def _train_split_stats(path, split: str, ann: Path, images, hw: tuple[int, int], ch: int):
    """(mean, std) of the training split's images when ``split`` is another split with a file of its own, so
    that it is normalised like training; (None, None) otherwise (the split's own statistics are used)."""
    if split in ("train", "training"):
        return None, None
    try:
        train_ann = annotation_file(path, "train")
        if train_ann == ann:
            return None, None
        tdata = _read_json(train_ann)
        tfolder = _images_dir(train_ann, str(tdata["images"][0]["file_name"]), images)
        return sample_stats([tfolder / str(im["file_name"]) for im in tdata["images"]], hw, ch)
    except (DataError, KeyError, TypeError):
        return None, None


def write_coco(ds: DenseDataset, path, images_dir=None) -> Path:
    """Write the boxes of ``ds`` as a COCO JSON (categories ``1..K-1`` named as ``ds.classes``) and its images as
    PNGs in ``images_dir`` (default ``images/`` beside the JSON); :func:`load_coco` reads it back exactly."""
    from PIL import Image

    from cnnlab._io import atomic_write

    if ds.boxes is None:
        raise DataError(f"{ds.name}: no boxes to write as COCO annotations")
    path = Path(path).expanduser()
    folder = Path(images_dir).expanduser() if images_dir is not None else path.parent / "images"
    _, h, w = ds.image_shape
    images, anns = [], []
    for i in range(len(ds)):
        fname = f"{i:06d}.png"
        img = ds.images[i].permute(1, 2, 0).numpy()
        atomic_write(folder / fname, png_bytes(Image.fromarray(img[..., 0] if img.shape[2] == 1 else img)))
        images.append({"id": i, "file_name": fname, "width": w, "height": h})
        for b, c in zip(ds.boxes[i].tolist(), ds.labels[i].tolist()):
            bw, bh = b[2] - b[0], b[3] - b[1]
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": c, "bbox": [b[0], b[1], bw, bh],
                         "area": bw * bh, "iscrowd": 0})
    cats = [{"id": k, "name": n} for k, n in enumerate(ds.classes) if k > 0]
    atomic_write(path, json.dumps({"images": images, "annotations": anns, "categories": cats}).encode())
    return path
