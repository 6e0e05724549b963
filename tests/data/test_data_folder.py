"""Image folders: listing, unreadable files skipped with a warning and a count, the folder loader."""

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data import (
    FolderDataset,
    FolderLoader,
    InMemoryLoader,
    build_loader,
    load_dataset,
    stratified_split,
)
from cnnlab.errors import DataError


def _make_tree(root, classes=("cat", "dog", "emu"), per_class=4, size=(10, 12), mode="RGB"):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            shape = (size[0], size[1], 3) if mode == "RGB" else size
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / c / f"{i}.png")
    return root


def test_imagefolder_lists_classes_and_skips_unreadable(tmp_path):
    root = _make_tree(tmp_path / "pets")
    (root / "dog" / "broken.png").write_bytes(b"this is not a png")
    (root / "dog" / "notes.txt").write_text("ignored, not an image")
    with pytest.warns(UserWarning, match="skipped 1 unreadable image"):
        ds = load_dataset(f"imagefolder:{root}")
    assert isinstance(ds, FolderDataset)
    assert ds.classes == ["cat", "dog", "emu"] and ds.num_classes == 3 and len(ds) == 12
    assert ds.skipped == [root / "dog" / "broken.png"]
    assert ds.image_shape == (3, 10, 12) and ds.class_counts().tolist() == [4, 4, 4]
    x, y = ds[5]
    expect = torch.from_numpy(np.array(Image.open(root / "dog" / "1.png"))).permute(2, 0, 1)
    assert y == 1 and x.dtype == torch.uint8 and torch.equal(x, expect)
    assert len(ds.mean) == 3 and all(0.3 < m < 0.7 for m in ds.mean)


def test_resize_and_grayscale(tmp_path):
    root = _make_tree(tmp_path / "g", mode="L", size=(8, 8))
    ds = FolderDataset.from_root(root, image_size=16)
    assert ds.image_shape == (1, 16, 16) and ds[0][0].shape == (1, 16, 16)
    arr = ds.to_array()
    assert arr.images.shape == (12, 1, 16, 16) and torch.equal(arr.labels, ds.labels)


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="folder not found"):
        load_dataset(f"imagefolder:{tmp_path / 'nope'}")
    one = _make_tree(tmp_path / "one", classes=("only",))
    with pytest.raises(DataError, match="need at least 2"):
        load_dataset(f"imagefolder:{one}")
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    (empty / "b").mkdir()
    with pytest.raises(DataError, match="no readable images"):
        load_dataset(f"imagefolder:{empty}")
    half = _make_tree(tmp_path / "half", classes=("a",))
    (half / "b").mkdir()
    (half / "b" / "x.jpg").write_bytes(b"\xff\xd8junk")
    with pytest.warns(UserWarning), pytest.raises(DataError, match="no readable image: b"):
        load_dataset(f"imagefolder:{half}")


def test_split_subfolders(tmp_path):
    _make_tree(tmp_path / "d" / "train")
    _make_tree(tmp_path / "d" / "test", per_class=2)
    assert len(load_dataset(f"imagefolder:{tmp_path / 'd'}", split="test")) == 6
    with pytest.raises(DataError, match="no val/"):
        load_dataset(f"imagefolder:{tmp_path / 'd'}", split="val")


def test_folder_loader_matches_in_memory_and_resumes(tmp_path):
    ds = FolderDataset.from_root(_make_tree(tmp_path / "p", per_class=7))
    tr, va = stratified_split(ds, val_fraction=0.25, seed=0)
    assert len(va) == 5 and isinstance(va, FolderDataset) and va.mean == ds.mean
    fl = FolderLoader(ds, batch_size=4, augment="crop:2,flip", seed=2, num_workers=0)
    ml = InMemoryLoader(ds.to_array(), batch_size=4, augment="crop:2,flip", seed=2)
    fb, mb = list(fl), list(ml)
    assert len(fb) == len(fl) == 6
    for (fx, fy), (mx, my) in zip(fb, mb):
        assert torch.equal(fx, mx) and torch.equal(fy, my)
    for (a, _), (b, _) in zip(fb[3:], fl.iter_from(3)):
        assert torch.equal(a, b)
    workers = FolderLoader(ds, batch_size=4, augment="crop:2,flip", seed=2, num_workers=1)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(fb, workers))  # decoded in a worker process
    assert isinstance(build_loader(ds, batch_size=4, num_workers=0), FolderLoader)
    assert isinstance(build_loader(ds, in_memory=True, batch_size=4), InMemoryLoader)
