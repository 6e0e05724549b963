"""Real photos that ship with installed packages, written as an image folder for transfer demos.

scikit-image ships ``lfw_subset.npy``: 100 face crops from Labeled Faces in the Wild (Huang et al.
2007) and 100 background crops of the same photos, 25x25 grey (``skimage.data.lfw_subset``). As an
image folder (``face/``, ``background/``) it is a small two-class problem of real photos, like the
tutorial's ants/bees -- available offline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnlab.errors import DataError

LFW_CLASSES = ("background", "face")


def lfw_faces() -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [200, 25, 25], labels)``: label 1 = face (the first 100), 0 = background."""
    try:
        import skimage
    except ImportError:
        raise DataError("the LFW face subset ships with scikit-image: pip install scikit-image") from None
    path = Path(skimage.__file__).parent / "data" / "lfw_subset.npy"
    if not path.is_file():
        raise DataError(f"{path} is missing from this scikit-image installation")
    images = (np.load(path) * 255).round().clip(0, 255).astype(np.uint8)
    labels = np.r_[np.ones(100, dtype=np.int64), np.zeros(len(images) - 100, dtype=np.int64)]
    return images, labels


def write_lfw_folder(root: str | Path, test_per_class: int = 0, per_class: int | None = None, seed: int = 0) -> Path:
    """Write the LFW subset as ``root/[train|test]/{background,face}/NNN.png``.

    ``test_per_class`` images of each class (seeded draw) go to ``test/``; without it, everything is in
    ``root/CLASS/``. ``per_class`` caps the training images per class. Returns ``root``."""
    from PIL import Image

    images, labels = lfw_faces()
    rng = np.random.default_rng(seed)
    root = Path(root)
    for c, name in enumerate(LFW_CLASSES):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test, train = idx[:test_per_class], idx[test_per_class:]
        if per_class is not None:
            train = train[:per_class]
        for split, members in (("test", test), ("train", train)):
            if not len(members):
                continue
            folder = root / (split if test_per_class else "") / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in members:
                Image.fromarray(images[i], mode="L").save(folder / f"{i:03d}.png")
    return root
