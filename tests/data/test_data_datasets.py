"""Datasets: real Fashion-MNIST values, the formats, and every way a file can be wrong."""

import gzip
import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnlab.data import ArrayDataset, channel_stats, load_dataset, read_idx
from cnnlab.data.idx import IDX_DATASETS
from cnnlab.errors import DataError

FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FMNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                  "Ankle boot"]  # Xiao, Rasul & Vollgraf 2017, Table 1


def test_fashion_mnist_train(fmnist_train):
    ds = fmnist_train
    assert len(ds) == 60000 and ds.images.shape == (60000, 1, 28, 28)
    assert ds.images.dtype == torch.uint8 and ds.labels.dtype == torch.int64
    assert ds.classes == FMNIST_CLASSES and ds.num_classes == 10 and ds.image_shape == (1, 28, 28)
    assert ds.class_counts().tolist() == [6000] * 10
    # The first labels of the official training file (ankle boot, T-shirt, T-shirt, dress, ...).
    assert ds.labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert int(ds.images[0].sum()) == 76247
    mean, std = channel_stats(ds.images)
    assert ds.mean[0] == pytest.approx(mean[0], abs=1e-6) == pytest.approx(0.2860406, abs=1e-6)
    assert ds.std[0] == pytest.approx(std[0], abs=1e-6) == pytest.approx(0.3530242, abs=1e-6)


def test_fashion_mnist_test(fmnist_test, fmnist_train):
    ds = fmnist_test
    assert len(ds) == 10000 and ds.images.shape == (10000, 1, 28, 28)
    assert ds.class_counts().tolist() == [1000] * 10
    assert ds.labels[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert ds.mean == fmnist_train.mean and ds.std == fmnist_train.std  # training statistics


def test_subset_keeps_metadata(fmnist_test):
    sub = fmnist_test.subset([0, 0, 5])
    assert len(sub) == 3 and sub.labels.tolist() == [9, 9, 1]
    assert sub.mean == fmnist_test.mean and sub.classes == FMNIST_CLASSES
    assert torch.equal(sub.images[1], fmnist_test.images[0])


def _write_idx(path: Path, arr: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def _fake_idx_dir(root: Path, n=20, gz=False) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        ext = ".gz" if gz else ""
        _write_idx(root / f"{prefix}-images-idx3-ubyte{ext}", rng.integers(0, 256, (n, 28, 28)), gz)
        _write_idx(root / f"{prefix}-labels-idx1-ubyte{ext}", np.arange(n) % 10, gz)
    return root


def test_idx_from_data_dir_plain_and_gz(tmp_path):
    for gz in (False, True):
        _fake_idx_dir(tmp_path / str(gz), gz=gz)
    ds = load_dataset("mnist", "train", data_dir=tmp_path / "False")
    assert ds.images.shape == (20, 1, 28, 28) and ds.labels.tolist() == [i % 10 for i in range(20)]
    assert ds.classes == [str(i) for i in range(10)]
    ds2 = load_dataset("kmnist", "train", data_dir=tmp_path / "True")
    assert torch.equal(ds2.images, ds.images) and ds2.classes[0] == "o"


@pytest.fixture
def fmnist_copy(tmp_path):
    d = tmp_path / "fm"
    d.mkdir()
    for f in FMNIST_DIR.glob("*labels*"):
        shutil.copy(f, d / f.name)
    _write_idx(d / "t10k-images-idx3-ubyte.gz", np.zeros((10000, 28, 28)), gz=True)
    return d


def test_missing_file_names_path_and_fix(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("fashion-mnist", data_dir=tmp_path)
    msg = str(e.value)
    assert str(tmp_path) in msg and "train-images-idx3-ubyte.gz" in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "--download" in msg


def test_truncated_gzip_is_data_error_with_path(fmnist_copy):
    p = fmnist_copy / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:500])
    with pytest.raises(DataError, match=str(p)):
        load_dataset("fashion-mnist", "test", data_dir=fmnist_copy)


def test_empty_and_bad_magic_and_size_mismatch(fmnist_copy):
    p = fmnist_copy / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        load_dataset("fashion-mnist", "test", data_dir=fmnist_copy)
    p.write_bytes(gzip.compress(b"\x12\x34\x08\x03" + b"\x00" * 20))
    with pytest.raises(DataError, match="magic"):
        read_idx(p)
    _write_idx(p, np.zeros((10, 28, 28)), gz=True)  # 10 images, 10000 labels
    with pytest.raises(DataError, match="10 images but .* 10000 labels"):
        load_dataset("fashion-mnist", "test", data_dir=fmnist_copy)
    raw = gzip.decompress(p.read_bytes())
    p.write_bytes(gzip.compress(raw[:-7]))
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_idx(p)


def test_unknown_dataset_and_split():
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("imagenet")
    with pytest.raises(DataError, match="unknown split"):
        load_dataset("synthetic", split="val")


def test_synthetic_is_deterministic_and_balanced():
    a, b = load_dataset("synthetic"), load_dataset("synthetic")
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert a.images.shape == (1000, 1, 28, 28) and a.class_counts().tolist() == [100] * 10
    t = load_dataset("synthetic", "test")
    assert len(t) == 500 and not torch.equal(t.images[:10], a.images[:10]) and t.mean == a.mean
    rgb = load_dataset("synthetic-rgb", n_train=64)
    assert rgb.images.shape == (64, 3, 32, 32) and len(rgb.mean) == 3


def test_array_dataset_validates():
    with pytest.raises(DataError, match="uint8"):
        ArrayDataset(torch.zeros(2, 1, 4, 4), torch.zeros(2), ["a"])
    with pytest.raises(DataError, match="labels must lie"):
        ArrayDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 3]), ["a", "b"])


# ------------------------------------------------------------------------------------------ CIFAR

def _cifar_tree(root: Path, n=6) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}, protocol=2))
    for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": list(range(n)),
             "batch_label": f"{f} of 5"}
        (folder / f).write_bytes(pickle.dumps(d, protocol=2))
    return folder


def test_cifar_python_format(tmp_path):
    folder = _cifar_tree(tmp_path)
    ds = load_dataset("cifar10", "train", data_dir=tmp_path)
    assert ds.images.shape == (30, 3, 32, 32) and ds.classes[9] == "truck" and len(ds.mean) == 3
    raw = pickle.loads((folder / "data_batch_1").read_bytes())["data"][0]
    assert torch.equal(ds.images[0], torch.from_numpy(raw.reshape(3, 32, 32)))  # channel-major rows
    assert len(load_dataset("cifar10", "test", data_dir=tmp_path)) == 6


def test_cifar_archive_is_extracted(tmp_path):
    src = tmp_path / "src"
    _cifar_tree(src)
    dest = tmp_path / "dl"
    dest.mkdir()
    with tarfile.open(dest / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    assert len(load_dataset("cifar10", "test", data_dir=dest)) == 6


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar_pickle_with_code_is_refused(tmp_path, capsys):
    folder = _cifar_tree(tmp_path)
    (folder / "test_batch").write_bytes(pickle.dumps({"data": _Evil(), "labels": []}, protocol=2))
    with pytest.raises(DataError, match="not allowed") as e:
        load_dataset("cifar10", "test", data_dir=tmp_path)
    assert str(folder / "test_batch") in str(e.value)
    assert "pwned" not in capsys.readouterr().out


def test_cifar_missing_names_paths(tmp_path):
    with pytest.raises(DataError, match="cifar-10-batches-py.*--download"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_idx_spec_table_is_complete():
    for spec in IDX_DATASETS.values():
        assert len(spec.classes) == 10 and set(spec.md5) == {f for fs in spec.files.values() for f in fs}
