"""Datasets held in memory as uint8 tensors: Fashion-MNIST, MNIST, KMNIST, CIFAR-10/100, a synthetic set.

``load_dataset(name, split)`` returns an :class:`ArrayDataset`; ``"imagefolder:PATH"`` returns a
:class:`~cnnlab.data.folder.FolderDataset` (decoded on the fly). Files are read from the standard
on-disk formats:

* idx (LeCun et al. 1998, http://yann.lecun.com/exdb/mnist/): a big-endian header (magic
  ``0x00000803`` for uint8 images with 3 dims, ``0x00000801`` for labels), then raw bytes; plain or
  gzipped. Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) and KMNIST (Clanuwat et al. 2018) use it too.
* CIFAR "python version" (Krizhevsky 2009): pickled dicts of ``data`` (N x 3072 uint8, channel-major)
  and ``labels``/``fine_labels``; read with a restricted unpickler (see ``download.py``).

The per-channel ``mean``/``std`` (in [0, 1] units) are those of each dataset's *training* split
(the test split carries the same values, so evaluation normalises exactly like training).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cnnlab.data.download import download_file, extract_archive, restricted_pickle_load
from cnnlab.errors import DataError

SYSTEM_DATA_DIR = Path("/usr/share/datasets")
"""Where Debian's ``dataset-*`` packages install data (``dataset-fashion-mnist``)."""


def default_data_dir() -> Path:
    """``$CNNLAB_DATA`` or ``~/.cache/cnnlab/data``: where ``--download`` puts files."""
    env = os.environ.get("CNNLAB_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cnnlab" / "data"


class ArrayDataset:
    """Images as one uint8 tensor ``[N, C, H, W]`` and labels as int64 ``[N]``, with their metadata.

    ``mean``/``std`` are per-channel statistics of the training split in [0, 1] units; a
    :meth:`subset` keeps them (a validation split is normalised like its training split).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str], name: str = "array",
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise DataError(f"{name}: images must be a uint8 tensor [N, C, H, W], got {images.dtype} "
                            f"{tuple(images.shape)}")
        labels = torch.as_tensor(labels, dtype=torch.int64)
        if labels.shape != (images.shape[0],):
            raise DataError(f"{name}: {images.shape[0]} images but labels of shape {tuple(labels.shape)}")
        if len(classes) == 0:
            raise DataError(f"{name}: no class names")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= len(classes)):
            raise DataError(f"{name}: labels must lie in [0, {len(classes) - 1}], found "
                            f"[{int(labels.min())}, {int(labels.max())}]")
        self.images = images
        self.labels = labels
        self.classes = list(classes)
        self.name = name
        if mean is None or std is None:
            mean, std = channel_stats(images)
        if len(mean) != images.shape[1] or len(std) != images.shape[1]:
            raise DataError(f"{name}: mean/std need {images.shape[1]} channel values")
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])

    def __repr__(self) -> str:
        return (f"ArrayDataset({self.name!r}, n={len(self)}, image_shape={self.image_shape}, "
                f"classes={self.num_classes})")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, indices, name: str | None = None) -> ArrayDataset:
        """The samples at ``indices`` (repeats allowed: a bootstrap resample is a subset)."""
        idx = torch.as_tensor(indices, dtype=torch.int64)
        return ArrayDataset(self.images[idx], self.labels[idx], self.classes, name or self.name,
                            self.mean, self.std)

    def class_counts(self) -> torch.Tensor:
        return torch.bincount(self.labels, minlength=self.num_classes)


def channel_stats(images: torch.Tensor, chunk: int = 8192) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 images in [0, 1] units, in float64."""
    if images.shape[0] == 0:
        c = images.shape[1]
        return (0.0,) * c, (1.0,) * c
    c = images.shape[1]
    s = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, dtype=torch.float64)
    for i in range(0, images.shape[0], chunk):
        x = images[i:i + chunk].to(torch.float64).transpose(0, 1).reshape(c, -1)
        s += x.sum(1)
        s2 += (x * x).sum(1)
    n = images.numel() // c
    mean = s / n
    std = (s2 / n - mean * mean).clamp_min(0).sqrt()
    mean, std = mean / 255.0, std / 255.0
    std = torch.where(std > 0, std, torch.ones_like(std))
    return tuple(mean.tolist()), tuple(std.tolist())


# ----------------------------------------------------------------------------------------- idx files

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


@dataclass(frozen=True)
class CifarSpec:
    name: str
    folder: str
    archive: str
    url: str
    md5: str
    files: dict[str, tuple[str, ...]]
    meta: str
    label_key: str
    names_key: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    sizes: dict[str, int]
    digits: bool = False


CIFAR_DATASETS: dict[str, CifarSpec] = {
    "cifar10": CifarSpec(
        name="cifar10", folder="cifar-10-batches-py", archive="cifar-10-python.tar.gz",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", md5="c58f30108f718f92721af3b95e74349a",
        files={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        meta="batches.meta", label_key="labels", names_key="label_names",
        mean=(0.4913996, 0.48215842, 0.44653093), std=(0.24703223, 0.24348513, 0.26158784),
        sizes={"train": 50000, "test": 10000}),
    "cifar100": CifarSpec(
        name="cifar100", folder="cifar-100-python", archive="cifar-100-python.tar.gz",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", md5="eb9058c3a382ffc7106e4002c42a8d85",
        files={"train": ("train",), "test": ("test",)},
        meta="meta", label_key="fine_labels", names_key="fine_label_names",
        mean=(0.50707516, 0.48654887, 0.44091784), std=(0.26733429, 0.25643846, 0.27615047),
        sizes={"train": 50000, "test": 10000}),
}

DIGIT_DATASETS = frozenset(n for n, s in IDX_DATASETS.items() if s.digits)
"""Datasets whose classes change under a horizontal flip (BatchAugment refuses ``flip`` for them)."""


def list_datasets() -> list[str]:
    return [*IDX_DATASETS, *CIFAR_DATASETS, "synthetic", "synthetic-rgb", "imagefolder:PATH", "fashion-scenes",
            "voc:DIR", "coco:FILE.json"]


def _split_name(split: str) -> str:
    s = {"train": "train", "training": "train", "test": "test", "t10k": "test"}.get(split)
    if s is None:
        raise DataError(f"unknown split {split!r}; use 'train' or 'test' (make a validation split with "
                        "stratified_split)")
    return s


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


def _load_idx(spec: IdxSpec, split: str, data_dir, download: bool) -> ArrayDataset:
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


def _cifar_dir(spec: CifarSpec, data_dir, download: bool) -> Path:
    roots = [Path(data_dir).expanduser()] if data_dir is not None else [SYSTEM_DATA_DIR / spec.name,
                                                                         default_data_dir()]
    for root in roots:
        for d in (root / spec.folder, root / spec.name / spec.folder):
            if d.is_dir():
                return d
        for a in (root / spec.archive, root / spec.name / spec.archive):
            if a.is_file():
                extract_archive(a, a.parent)
                if (a.parent / spec.folder).is_dir():
                    return a.parent / spec.folder
                raise DataError(f"{a}: the archive holds no {spec.folder}/ folder")
    if download:
        dest = roots[0] if data_dir is not None else default_data_dir()
        archive = download_file(spec.url, dest / spec.archive, md5=spec.md5)
        extract_archive(archive, dest)
        return dest / spec.folder
    looked = ", ".join(str(r) for r in roots)
    raise DataError(f"{spec.name}: neither {spec.folder}/ nor {spec.archive} found (looked in {looked}; "
                    f"accepted: the official CIFAR python version); run `cnnlab data fetch {spec.name} "
                    "--download` or pass --data-dir")


def _load_cifar(spec: CifarSpec, split: str, data_dir, download: bool) -> ArrayDataset:
    folder = _cifar_dir(spec, data_dir, download)
    meta = restricted_pickle_load(folder / spec.meta)
    classes = meta.get(spec.names_key)
    if not isinstance(classes, list) or not classes:
        raise DataError(f"{folder / spec.meta}: no {spec.names_key!r} list")
    chunks, labels = [], []
    for fname in spec.files[split]:
        path = folder / fname
        d = restricted_pickle_load(path)
        data, lab = d.get("data"), d.get(spec.label_key)
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise DataError(f"{path}: 'data' must be a uint8 array [N, 3072]")
        if lab is None or len(lab) != data.shape[0]:
            raise DataError(f"{path}: {spec.label_key!r} missing or not one per image")
        chunks.append(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()))
        labels.append(torch.as_tensor(np.asarray(lab, dtype=np.int64)))
    return ArrayDataset(torch.cat(chunks), torch.cat(labels), [str(c) for c in classes], f"{spec.name}-{split}",
                        spec.mean, spec.std)


# ------------------------------------------------------------------------------------------ synthetic

def make_synthetic(n: int = 1000, num_classes: int = 10, image_size: int = 28, channels: int = 1,
                   seed: int = 0, noise: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    """A tiny, deterministic, learnable image set: class ``k`` is a grating at angle ``k * 180/K`` degrees.

    Each image has a random phase and frequency jitter plus pixel noise, so a small CNN learns it in a few
    steps but not trivially. Returns ``(uint8 [n, C, S, S], int64 [n])`` with balanced classes.
    """
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % num_classes
    labels = labels[torch.randperm(n, generator=g)]
    angle = labels.double() * (torch.pi / num_classes)
    freq = 0.5 + 0.15 * torch.rand(n, generator=g, dtype=torch.float64)
    phase = 2 * torch.pi * torch.rand(n, generator=g, dtype=torch.float64)
    r = torch.arange(image_size, dtype=torch.float64) - (image_size - 1) / 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    proj = torch.cos(angle)[:, None, None] * xx + torch.sin(angle)[:, None, None] * yy
    wave = 0.5 + 0.5 * torch.sin(freq[:, None, None] * proj + phase[:, None, None])
    x = wave[:, None].expand(n, channels, image_size, image_size)
    if channels > 1:  # give colour channels different gains so they are not identical
        x = x * torch.linspace(1.0, 0.6, channels, dtype=torch.float64)[None, :, None, None]
    x = x + noise * torch.randn(n, channels, image_size, image_size, generator=g, dtype=torch.float64)
    images = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    return images.contiguous(), labels.long()


_SYNTHETIC = {"synthetic": dict(channels=1, image_size=28), "synthetic-rgb": dict(channels=3, image_size=32)}
_SYNTHETIC_SIZES = {"train": 1000, "test": 500}


def _load_synthetic(name: str, split: str, **options) -> ArrayDataset:
    opts = {**_SYNTHETIC[name], "num_classes": 10, **options}
    n_train = int(opts.pop("n_train", _SYNTHETIC_SIZES["train"]))
    n_test = int(opts.pop("n_test", _SYNTHETIC_SIZES["test"]))
    train_x, train_y = make_synthetic(n_train, seed=0, **opts)
    mean, std = channel_stats(train_x)
    if split == "train":
        x, y = train_x, train_y
    else:
        x, y = make_synthetic(n_test, seed=1, **opts)
    classes = [f"angle{k * 180 // opts['num_classes']}" for k in range(opts["num_classes"])]
    return ArrayDataset(x, y, classes, f"{name}-{split}", mean, std)


# ----------------------------------------------------------------------------------------- the entry

def load_dataset(name: str, split: str = "train", data_dir: str | os.PathLike | None = None,
                 download: bool = False, **options):
    """Load a dataset by name.

    ``name``: ``fashion-mnist``, ``mnist``, ``kmnist``, ``cifar10``, ``cifar100``, ``synthetic``
    (1x28x28, 10 classes, 1000 train / 500 test; ``options`` may set ``n_train``, ``n_test``,
    ``num_classes``, ``image_size``, ``channels``), ``synthetic-rgb`` (3x32x32), or
    ``imagefolder:PATH`` (a class-per-folder tree; ``options`` go to :class:`FolderDataset`).

    Dense datasets (a :class:`~cnnlab.data.dense.DenseDataset` with masks and/or boxes):
    ``fashion-scenes`` or ``fashion-scenes:size=64,max_items=2`` (generated and cached, see
    :func:`~cnnlab.data.scenes.make_scenes`; ``options`` as it takes them plus ``n_train``/``n_test``),
    ``voc:DIR`` (a VOC-style folder, :func:`~cnnlab.data.voc.load_voc`) and ``coco:FILE.json`` or
    ``coco:DIR`` (COCO-style boxes, :func:`~cnnlab.data.coco.load_coco`).

    Without ``data_dir`` the files are looked for in ``/usr/share/datasets/NAME`` (Debian's
    ``dataset-*`` packages) and in :func:`default_data_dir`. ``download=True`` fetches the official
    files (with checksum) when they are not found.
    """
    if not isinstance(name, str):
        raise DataError(f"dataset name must be a string, got {type(name).__name__}")
    if name.startswith("imagefolder:"):
        from cnnlab.data.folder import FolderDataset

        return FolderDataset.from_root(name.split(":", 1)[1], split=split, **options)
    if name.startswith("voc:"):
        from cnnlab.data.voc import load_voc

        return load_voc(name.split(":", 1)[1], split=split, **options)
    if name.startswith("coco:"):
        from cnnlab.data.coco import load_coco

        return load_coco(name.split(":", 1)[1], split=split, **options)
    if name.lower().partition(":")[0] in ("fashion-scenes", "fashion_scenes", "fashionscenes"):
        from cnnlab.data.scenes import load_scenes

        return load_scenes(name, split=split, data_dir=data_dir, download=download, **options)
    key = name.lower().replace("_", "-")
    key = {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "cifar-100": "cifar100"}.get(key, key)
    if key in _SYNTHETIC:
        return _load_synthetic(key, _split_name(split), **options)
    if options:
        raise DataError(f"{name}: unexpected options {sorted(options)}")
    if key in IDX_DATASETS:
        return _load_idx(IDX_DATASETS[key], _split_name(split), data_dir, download)
    if key in CIFAR_DATASETS:
        return _load_cifar(CIFAR_DATASETS[key], _split_name(split), data_dir, download)
    raise DataError(f"unknown dataset {name!r}; known: {', '.join(list_datasets())}")
