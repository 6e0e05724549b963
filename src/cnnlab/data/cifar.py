"""CIFAR-10/100, the "python version" (Krizhevsky 2009): pickled dicts of ``data`` (N x 3072 uint8,
channel-major) and ``labels``/``fine_labels``, read with a restricted unpickler (see ``download.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cnnlab.data.arrays import SYSTEM_DATA_DIR, ArrayDataset, default_data_dir
from cnnlab.data.download import download_file, extract_archive, restricted_pickle_load
from cnnlab.errors import DataError


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


def load_cifar(spec: CifarSpec, split: str, data_dir, download: bool) -> ArrayDataset:
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
