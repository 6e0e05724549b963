"""The name -> dataset dispatcher, above every format module: ``load_dataset("fashion-mnist")``,
``"imagefolder:PATH"``, ``"fashion-scenes"``, ``"voc:DIR"``, ``"coco:FILE.json"``; and ``build_loader``.
"""

from __future__ import annotations

import os

from cnnlab.data.arrays import ArrayDataset, split_name
from cnnlab.data.cifar import CIFAR_DATASETS, load_cifar
from cnnlab.data.coco import load_coco
from cnnlab.data.folder import FolderDataset
from cnnlab.data.idx import IDX_DATASETS, load_idx
from cnnlab.data.loader import FolderLoader, InMemoryLoader
from cnnlab.data.scenes import load_scenes
from cnnlab.data.synthetic import SYNTHETIC_DATASETS, load_synthetic
from cnnlab.data.voc import load_voc
from cnnlab.errors import ConfigError, DataError


def list_datasets() -> list[str]:
    return [*IDX_DATASETS, *CIFAR_DATASETS, "synthetic", "synthetic-rgb", "imagefolder:PATH", "fashion-scenes",
            "voc:DIR", "coco:FILE.json"]


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
        return FolderDataset.from_root(name.split(":", 1)[1], split=split, **options)
    if name.startswith("voc:"):
        return load_voc(name.split(":", 1)[1], split=split, **options)
    if name.startswith("coco:"):
        return load_coco(name.split(":", 1)[1], split=split, **options)
    if name.lower().partition(":")[0] in ("fashion-scenes", "fashion_scenes", "fashionscenes"):
        return load_scenes(name, split=split, data_dir=data_dir, download=download, **options)
    key = name.lower().replace("_", "-")
    key = {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "cifar-100": "cifar100"}.get(key, key)
    if key in SYNTHETIC_DATASETS:
        return load_synthetic(key, split_name(split), **options)
    if options:
        raise DataError(f"{name}: unexpected options {sorted(options)}")
    if key in IDX_DATASETS:
        return load_idx(IDX_DATASETS[key], split_name(split), data_dir, download)
    if key in CIFAR_DATASETS:
        return load_cifar(CIFAR_DATASETS[key], split_name(split), data_dir, download)
    raise DataError(f"unknown dataset {name!r}; known: {', '.join(list_datasets())}")


def build_loader(data, *, split: str = "train", data_dir=None, download: bool = False, in_memory: bool = False,
                 num_workers: int = 2, **loader_kwargs):
    """A loader for a dataset object or a name/spec (``"fashion-mnist"``, ``"imagefolder:DIR"``).

    Array datasets get an :class:`InMemoryLoader`; image folders a :class:`FolderLoader` with
    ``num_workers`` decoding processes, or, with ``in_memory=True``, an :class:`InMemoryLoader` over
    the folder decoded once (fast for small folders). ``loader_kwargs`` go to the loader.
    """
    if isinstance(data, str):
        data = load_dataset(data, split=split, data_dir=data_dir, download=download)
    if isinstance(data, FolderDataset):
        if in_memory:
            return InMemoryLoader(data.to_array(), **loader_kwargs)
        return FolderLoader(data, num_workers=num_workers, **loader_kwargs)
    if isinstance(data, ArrayDataset) or hasattr(data, "images"):
        return InMemoryLoader(data, **loader_kwargs)
    raise ConfigError(f"cannot build a loader for {type(data).__name__}; pass a dataset or a name")
