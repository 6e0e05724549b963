"""idx files (LeCun et al. 1998, http://yann.lecun.com/exdb/mnist/): Fashion-MNIST, MNIST, KMNIST.

A big-endian header (magic ``0x00000803`` for uint8 images with 3 dims, ``0x00000801`` for labels), then raw
bytes; plain or gzipped. Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) and KMNIST (Clanuwat et al. 2018) use it
too. The per-channel ``mean``/``std`` (in [0, 1] units) are those of each dataset's *training* split (the test
split carries the same values, so evaluation normalises exactly like training).
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cnnlab.data.arrays import SYSTEM_DATA_DIR, ArrayDataset, default_data_dir
from cnnlab.data.download import download_file
from cnnlab.errors import DataError


def _read_bytes(path: Path) -> bytes:
    try:
        if path.stat().st_size == 0:
            raise DataError(f"{path}: file is empty")
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: corrupt or unreadable ({e})") from None


def read_idx(path: str | os.PathLike) -> torch.Tensor:
    """Read a uint8 idx file (``.gz`` or plain) into a tensor of its declared shape."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{path}: not an idx file (bad magic number); expected the MNIST idx format")
    if data[2] != 0x08:
        raise DataError(f"{path}: idx element type 0x{data[2]:02x} unsupported; expected 0x08 (uint8)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DataError(f"{path}: truncated idx header")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise DataError(f"{path}: idx header declares {shape} ({expected} bytes) but the file holds "
                        f"{len(data) - header}; the file is truncated or corrupt")
    arr = np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)
    return torch.from_numpy(arr.copy())


@dataclass(frozen=True)
class IdxSpec:
    """An idx-format dataset: its files, where to get them, its classes and training statistics."""

    name: str
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    mirrors: tuple[str, ...]
    files: dict[str, tuple[str, str]]  # split -> (images file, labels file), as .gz
    md5: dict[str, str]  # official .gz archive md5 (torchvision's table)
    content_sha256: dict[str, str] = field(default_factory=dict)  # sha256 of the uncompressed payload
    sizes: dict[str, int] = field(default_factory=dict)
    install_hint: str = ""
    digits: bool = False


_IDX_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
              "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}

IDX_DATASETS: dict[str, IdxSpec] = {
    "fashion-mnist": IdxSpec(
        name="fashion-mnist",
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"),
        # Statistics of the 60,000 training images (computed here; tests recompute them).
        mean=(0.2860405969887955,), std=(0.3530242445149223,),
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        files=_IDX_FILES,
        md5={"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
             "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
             "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
             "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
        # sha256 of the uncompressed idx payload, measured on Debian's dataset-fashion-mnist files
        # (Debian re-compresses the archives, so their .gz md5 differs from upstream's; the payload does not).
        content_sha256={
            "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"},
        sizes={"train": 60000, "test": 10000},
        install_hint="install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu, as root) or run "
                     "`cnnlab data fetch fashion-mnist --download`",
    ),
    "mnist": IdxSpec(
        name="mnist", classes=tuple(str(d) for d in range(10)),
        mean=(0.1306604762738429,), std=(0.30810780385646264,),  # the widely used training-set values
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",),
        files=_IDX_FILES,
        md5={"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
             "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
             "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
             "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
        sizes={"train": 60000, "test": 10000},
        install_hint="put the four idx files there or run `cnnlab data fetch mnist --download`",
        digits=True,
    ),
    "kmnist": IdxSpec(
        name="kmnist", classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        mean=(0.19176215,), std=(0.34834805,),
        mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        files=_IDX_FILES,
        md5={"train-images-idx3-ubyte.gz": "bdb82020997e1d708af4cf47b453dcf7",
             "train-labels-idx1-ubyte.gz": "e144d726b3acfaa3e44228e80efcd344",
             "t10k-images-idx3-ubyte.gz": "5c965bf0a639b31b8f53240b1b52f4d7",
             "t10k-labels-idx1-ubyte.gz": "7320c461ea6c1c855c0b718fb2a4b134"},
        sizes={"train": 60000, "test": 10000},
        install_hint="put the four idx files there or run `cnnlab data fetch kmnist --download`",
        digits=True,  # handwritten characters: a mirrored character is not the same character
    ),
}

DIGIT_DATASETS = frozenset(n for n, s in IDX_DATASETS.items() if s.digits)
"""Datasets whose classes change under a horizontal flip (BatchAugment refuses ``flip`` for them)."""


def _idx_candidates(spec: IdxSpec, data_dir: str | os.PathLike | None) -> list[Path]:
    """Where ``spec``'s files may be: ``ROOT/NAME``, torchvision's ``ROOT/FashionMNIST/raw``, and an explicit
    ``data_dir`` itself (never a default root itself: MNIST-family files share their names)."""
    torchvision_name = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST", "kmnist": "KMNIST"}[spec.name]
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        return [root, root / spec.name, root / torchvision_name / "raw"]
    return [d for root in (SYSTEM_DATA_DIR, default_data_dir())
            for d in (root / spec.name, root / torchvision_name / "raw")]


def _find_file(dirs: list[Path], gz_name: str) -> Path | None:
    for d in dirs:
        for name in (gz_name, gz_name[:-3]):
            if (d / name).is_file():
                return d / name
    return None


def locate_idx(spec: IdxSpec, split: str, data_dir=None) -> tuple[Path, Path]:
    """The (images, labels) files of ``split``; a :class:`DataError` lists where it looked and how to fix."""
    dirs = _idx_candidates(spec, data_dir)
    found = [_find_file(dirs, f) for f in spec.files[split]]
    if all(found):
        return found[0], found[1]  # type: ignore[return-value]
    missing = [f for f, p in zip(spec.files[split], found) if p is None]
    looked = ", ".join(str(d) for d in dict.fromkeys(dirs))
    raise DataError(f"{spec.name}: {', '.join(missing)} not found (looked in {looked}; accepted: the idx "
                    f"files, gzipped or not); {spec.install_hint}")


def fetch_idx(spec: IdxSpec, data_dir=None) -> Path:
    """Download the four official idx archives into ``data_dir/NAME`` (checksummed); return the folder."""
    dest = Path(data_dir).expanduser() / spec.name if data_dir is not None else default_data_dir() / spec.name
    for split in ("train", "test"):
        for fname in spec.files[split]:
            if _find_file([dest], fname) is not None:
                continue
            errors = []
            for mirror in spec.mirrors:
                try:
                    download_file(mirror + fname, dest / fname, md5=spec.md5.get(fname))
                    break
                except DataError as e:
                    errors.append(str(e))
            else:
                raise DataError("; ".join(errors))
    return dest


def load_idx(spec: IdxSpec, split: str, data_dir, download: bool) -> ArrayDataset:
    try:
        img_path, lbl_path = locate_idx(spec, split, data_dir)
    except DataError:
        if not download:
            raise
        fetch_idx(spec, data_dir)
        img_path, lbl_path = locate_idx(spec, split, data_dir if data_dir is not None else default_data_dir())
    images = read_idx(img_path)
    labels = read_idx(lbl_path)
    if images.dim() != 3:
        raise DataError(f"{img_path}: expected images of shape [N, H, W], found {tuple(images.shape)}")
    if labels.dim() != 1:
        raise DataError(f"{lbl_path}: expected labels of shape [N], found {tuple(labels.shape)}")
    if labels.shape[0] != images.shape[0]:
        raise DataError(f"{img_path} has {images.shape[0]} images but {lbl_path} has {labels.shape[0]} labels")
    if images.shape[0] == 0:
        raise DataError(f"{img_path}: holds no images")
    if int(labels.max()) >= len(spec.classes):
        raise DataError(f"{lbl_path}: label {int(labels.max())} outside the {len(spec.classes)} classes")
    return ArrayDataset(images.unsqueeze(1), labels.long(), spec.classes, f"{spec.name}-{split}",
                        spec.mean, spec.std)
