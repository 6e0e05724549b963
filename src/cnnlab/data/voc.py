"""PASCAL VOC-style folders (Everingham et al. 2010): segmentation masks and/or boxes -> :class:`DenseDataset`.

``load_dataset("voc:DIR", split)`` reads (``DIR`` itself, or ``DIR/VOC2012``, ``DIR/VOCdevkit/VOC20xx``)::

    JPEGImages/ID.jpg                        the images (.jpg/.jpeg/.png)
    SegmentationClass/ID.png                 class-index masks: palette ("P") or grayscale ("L") PNGs,
                                             255 = object boundary / ignore
    Annotations/ID.xml                       boxes: <object><name>, <bndbox> xmin ymin xmax ymax
                                             (1-based, inclusive), <difficult>
    ImageSets/Segmentation/{train,val}.txt   the ids of each split (ImageSets/Main/ without masks)
    labels.txt                               optional class names, one a line (background first)

Masks are used when ``SegmentationClass/`` exists, boxes when ``Annotations/`` does (for every id in
the split). Without ``ImageSets`` every id is in the ``train`` split. Class names: ``labels.txt`` (or
``classes.txt``) when present, else VOC's 21. Every image is resized to one size (``size=``, default the
most common) to be held in memory: the image bilinear, the mask nearest, the boxes scaled. Unreadable
or missing images are skipped with one warning (``meta["skipped"]``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
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

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")
_SPLIT_FILES = {"train": ("train",), "val": ("val",), "test": ("test", "val"), "trainval": ("trainval",)}


# --------------------------------------------------------------------------------------------- VOC

def voc_root(root) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: folder not found (accepted: a VOC-style folder with JPEGImages/ and "
                        "SegmentationClass/ and/or Annotations/)")
    candidates = [root, root / "VOC2012", *sorted(root.glob("VOCdevkit/VOC*")), *sorted(root.glob("VOC*"))]
    for c in candidates:
        if (c / "JPEGImages").is_dir():
            return c
    raise DataError(f"{root}: no JPEGImages/ folder (looked in {', '.join(str(c) for c in candidates)}); "
                    "accepted: a VOC-style folder with JPEGImages/, SegmentationClass/ and/or Annotations/")


def read_classes(root: Path) -> list[str] | None:
    for fname in ("labels.txt", "classes.txt"):
        f = root / fname
        if f.is_file():
            names = [ln.strip() for ln in f.read_text().splitlines() if ln.strip()]
            if not names:
                raise DataError(f"{f}: empty class list (one class name a line, background first)")
            if names[0].lower() not in ("background", "_background_", "__background__"):
                names = ["background", *names]
            names[0] = "background"
            if len(set(names)) != len(names):
                raise DataError(f"{f}: duplicate class names")
            return names
    return None


def split_ids(root: Path, split: str, kind: str) -> list[str]:
    """The ids of ``split`` from ``ImageSets/<kind>/``; every id for ``train`` when there are no split files."""
    if split not in _SPLIT_FILES:
        raise DataError(f"unknown split {split!r} for a VOC folder; use train, val, trainval or test")
    sets = root / "ImageSets" / kind
    for name in _SPLIT_FILES[split]:
        f = sets / f"{name}.txt"
        if f.is_file():
            ids = [ln.split()[0] for ln in f.read_text().splitlines() if ln.strip()]
            if not ids:
                raise DataError(f"{f}: lists no image ids")
            return ids
    if split == "train" and not sets.is_dir():
        folder = root / ("SegmentationClass" if kind == "Segmentation" else "Annotations")
        ids = sorted(p.stem for p in folder.iterdir() if p.suffix.lower() in (".png", ".xml"))
        if not ids:
            raise DataError(f"{folder}: no annotation files")
        return ids
    raise DataError(f"{sets}: no {' or '.join(n + '.txt' for n in _SPLIT_FILES[split])} for split {split!r}")


def _image_path(root: Path, image_id: str) -> Path:
    for ext in _IMAGE_EXTS:
        p = root / "JPEGImages" / f"{image_id}{ext}"
        if p.is_file():
            return p
    return root / "JPEGImages" / f"{image_id}.jpg"


def read_mask(path: Path, size: tuple[int, int], num_classes: int) -> np.ndarray:
    """A class-index PNG (palette or grayscale) as uint8 ``[H, W]``, resized nearest to ``size``."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L"):
                raise DataError(f"{path}: mask mode {im.mode!r}; accepted: palette (P) or grayscale (L) PNGs "
                                "holding class indices (255 = ignore)")
            if im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.NEAREST)
            m = np.asarray(im, dtype=np.uint8)
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{path}: unreadable mask ({e})") from None
    bad = (m >= num_classes) & (m != IGNORE)
    if bad.any():
        raise DataError(f"{path}: mask value {int(m[bad].max())} but only {num_classes} classes "
                        f"(0..{num_classes - 1}, 255 = ignore); give the class names in labels.txt")
    return m


def read_voc_xml(path: Path, classes: list[str], image_size: tuple[int, int]):
    """``(boxes [n,4] xyxy continuous pixels, labels [n], difficult [n])`` of one annotation file."""
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty annotation file")
    try:
        tree = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise DataError(f"{path}: not valid XML ({e})") from None
    index = {c: i for i, c in enumerate(classes)}
    boxes, labels, difficult = [], [], []
    for k, obj in enumerate(tree.iter("object")):
        name = (obj.findtext("name") or "").strip()
        if name not in index or index[name] == 0:
            raise DataError(f"{path}: object {k} has unknown class {name!r}; known: {', '.join(classes[1:])}")
        bb = obj.find("bndbox")
        try:
            x0, y0, x1, y1 = (float(bb.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax"))
        except (AttributeError, TypeError, ValueError):
            raise DataError(f"{path}: object {k} ({name}) has no numeric bndbox xmin/ymin/xmax/ymax") from None
        boxes.append([x0 - 1, y0 - 1, x1, y1])  # 1-based inclusive pixels -> continuous coordinates
        labels.append(index[name])
        difficult.append(int((obj.findtext("difficult") or "0").strip() or 0))
    b = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    lb = torch.tensor(labels, dtype=torch.int64)
    check_boxes(b, lb, image_size, len(classes), where=f"{path}")
    return b, lb, torch.tensor(difficult, dtype=torch.bool)


def load_voc(root, split: str = "train", size: int | tuple[int, int] | None = None, channels: int | None = None,
             masks: bool | None = None, boxes: bool | None = None) -> DenseDataset:
    """A VOC-style folder's ``split`` (``train``, ``val``, ``trainval``; ``test`` falls back to ``val``).

    ``masks``/``boxes``: force or refuse either part (default: whatever the folder has). ``size``: the
    common ``(H, W)`` (or an int) all images are resized to. ``mean``/``std`` are those of (up to 256)
    images of the ``train`` split.
    """
    root = voc_root(root)
    seg_dir, ann_dir = root / "SegmentationClass", root / "Annotations"
    use_masks = seg_dir.is_dir() if masks is None else bool(masks)
    use_boxes = ann_dir.is_dir() if boxes is None else bool(boxes)
    for on, d in ((use_masks, seg_dir), (use_boxes, ann_dir)):
        if on and not d.is_dir():
            raise DataError(f"{d}: folder not found")
    if not (use_masks or use_boxes):
        raise DataError(f"{root}: neither SegmentationClass/ nor Annotations/; nothing to learn from")
    named = read_classes(root)
    classes = named or list(VOC_CLASSES)
    kind = "Segmentation" if use_masks else "Main"
    ids = split_ids(root, split, kind)
    paths = [_image_path(root, i) for i in ids]
    infos = scan_images(paths)
    if all(i is None for i in infos):
        raise DataError(f"{root / 'JPEGImages'}: none of the {len(ids)} images of split {split!r} is readable")
    hw = pick_size(size, infos)
    ch = pick_channels(channels, infos)
    images, failed = read_images(paths, hw, ch)
    bad = set(failed) | {i for i, info in enumerate(infos) if info is None}
    keep = [i for i in range(len(ids)) if i not in bad]
    skipped = [str(paths[i]) for i in sorted(bad)]
    skip_warning(root / "JPEGImages", skipped)
    images = images[keep]
    mask_t = box_list = label_list = None
    extras = {}
    if use_masks:
        try:
            mask_t = torch.from_numpy(np.stack([read_mask(seg_dir / f"{ids[i]}.png", hw, len(classes))
                                                for i in keep]))
        except FileNotFoundError as e:
            raise DataError(f"{e.filename}: mask not found") from None
    if use_boxes:
        box_list, label_list, diff = [], [], []
        for i in keep:
            h0, w0 = infos[i][0]
            b, lb, d = read_voc_xml(ann_dir / f"{ids[i]}.xml", classes, (h0, w0))
            box_list.append(scale_boxes(b, (h0, w0), hw))
            label_list.append(lb)
            diff.append(d)
        extras["difficult"] = diff
    mean = std = None
    if split != "train":
        try:
            train_paths = [_image_path(root, i) for i in split_ids(root, "train", kind)]
            mean, std = sample_stats(train_paths, hw, ch)
        except DataError:
            mean = std = None  # no train split: the split's own statistics
    name = f"voc:{root}:{split}"
    return DenseDataset(images, mask_t, box_list, label_list, classes, name, mean, std, extras=extras,
                        meta={"root": str(root), "skipped": skipped, "size": hw, "ids": [ids[i] for i in keep]})



# ------------------------------------------------------------------------------------------ writing

def voc_colormap(n: int = 256) -> np.ndarray:
    """VOC's palette (the devkit's ``labelcolormap``): class ``i``'s bits spread over the top bits of R, G, B."""
    cmap = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, rgb = i, [0, 0, 0]
        for j in range(8):
            for k in range(3):
                rgb[k] |= ((c >> k) & 1) << (7 - j)
            c >>= 3
        cmap[i] = rgb
    return cmap


def write_voc(ds: DenseDataset, root, split: str = "train") -> Path:
    """Write ``ds`` as a VOC-style folder that :func:`load_voc` reads back exactly (lossless PNG images,
    palette masks, XML boxes, ``labels.txt``); ids are ``<split>_000000``…. Returns ``root``."""
    from PIL import Image

    from cnnlab._io import atomic_write

    root = Path(root).expanduser()
    palette = voc_colormap().reshape(-1).tolist()
    ids = [f"{split}_{i:06d}" for i in range(len(ds))]
    _, h, w = ds.image_shape
    for i, image_id in enumerate(ids):
        img = ds.images[i].permute(1, 2, 0).numpy()
        atomic_write(root / "JPEGImages" / f"{image_id}.png",
                     png_bytes(Image.fromarray(img[..., 0] if img.shape[2] == 1 else img)))
        if ds.masks is not None:
            m = Image.fromarray(ds.masks[i].numpy(), mode="P")
            m.putpalette(palette)
            atomic_write(root / "SegmentationClass" / f"{image_id}.png", png_bytes(m))
        if ds.boxes is not None:
            objs = "".join(
                f"<object><name>{ds.classes[c]}</name><difficult>0</difficult><bndbox><xmin>{b[0] + 1:g}</xmin>"
                f"<ymin>{b[1] + 1:g}</ymin><xmax>{b[2]:g}</xmax><ymax>{b[3]:g}</ymax></bndbox></object>"
                for b, c in zip(ds.boxes[i].tolist(), ds.labels[i].tolist()))
            xml = (f"<annotation><filename>{image_id}.png</filename><size><width>{w}</width><height>{h}</height>"
                   f"<depth>{ds.image_shape[0]}</depth></size>{objs}</annotation>\n")
            atomic_write(root / "Annotations" / f"{image_id}.xml", xml.encode())
    kind = "Segmentation" if ds.masks is not None else "Main"
    atomic_write(root / "ImageSets" / kind / f"{split}.txt", ("\n".join(ids) + "\n").encode())
    atomic_write(root / "labels.txt", ("\n".join(ds.classes) + "\n").encode())
    return root
