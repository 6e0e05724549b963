"""A user's own images, one sub-folder per class (torchvision's ``ImageFolder`` layout), decoded on the fly.

``root/CLASS/**/*.png|jpg|…``; classes are the sub-folder names in sorted order. ``root/train``,
``root/val`` and ``root/test`` are used as splits when present. Files with an image extension that
cannot be read are skipped with one warning and counted (``.skipped``), not a crash; a folder with no
readable images, or with fewer than two classes, is a :class:`DataError`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from cnnlab.data.arrays import ArrayDataset, channel_stats
from cnnlab.data.images import GRAY_MODES, IMG_EXTENSIONS, decode_image, open_image
from cnnlab.errors import DataError


class FolderDataset(Dataset):
    """Images listed from a class-per-folder tree; ``ds[i]`` decodes one to ``(uint8 [C,H,W], label)``.

    ``image_size`` (int or (H, W)) and ``channels`` (1 or 3) default to those of the first readable
    image (grayscale modes give 1 channel, everything else 3); other images are converted and
    resized (bilinear) to match. ``mean``/``std`` are estimated from up to 256 images (seeded) on
    first use unless given.
    """

    def __init__(self, root, samples: list[tuple[Path, int]], classes: list[str], image_size: tuple[int, int],
                 channels: int, name: str | None = None, mean=None, std=None, skipped: list[Path] | None = None):
        self.root = Path(root)
        self.samples = list(samples)
        self.classes = list(classes)
        self.image_size = tuple(image_size)
        self.channels = int(channels)
        self.name = name or f"imagefolder:{self.root}"
        self.skipped = list(skipped or [])
        self.labels = torch.tensor([c for _, c in self.samples], dtype=torch.int64)
        self._mean = tuple(mean) if mean is not None else None
        self._std = tuple(std) if std is not None else None

    @classmethod
    def from_root(cls, root, split: str = "train", image_size: int | tuple[int, int] | None = None,
                  channels: int | None = None, verify: bool = True) -> FolderDataset:
        root = Path(root).expanduser()
        if not root.is_dir():
            raise DataError(f"{root}: folder not found (accepted: a folder with one sub-folder of images per "
                            "class, optionally inside train/ val/ test/)")
        split_dirs = {s: root / s for s in ("train", "val", "test") if (root / s).is_dir()}
        if split in split_dirs:
            folder = split_dirs[split]
        elif split == "train" and not split_dirs:
            folder = root
        else:
            raise DataError(f"{root}: no {split}/ sub-folder (found: {', '.join(split_dirs) or 'none'}); make a "
                            "validation split with stratified_split")
        classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
        if len(classes) < 2:
            raise DataError(f"{folder}: found {len(classes)} class sub-folder(s) {classes}; need at least 2 "
                            "(one sub-folder of images per class)")
        samples: list[tuple[Path, int]] = []
        skipped: list[Path] = []
        first = None
        for label, cname in enumerate(classes):
            files = []
            for dirpath, dirnames, filenames in os.walk(folder / cname, followlinks=True):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                files += [Path(dirpath) / f for f in sorted(filenames)
                          if f.lower().endswith(IMG_EXTENSIONS) and not f.startswith(".")]
            for p in files:
                if verify or first is None:
                    try:
                        with open_image(p) as im:
                            info = (im.size, im.mode)
                            if verify:
                                im.verify()
                    except Exception:
                        skipped.append(p)
                        continue
                    first = first or info
                samples.append((p, label))
        counts = np.bincount([c for _, c in samples], minlength=len(classes))
        empty = [classes[i] for i in range(len(classes)) if counts[i] == 0]
        if skipped:
            warnings.warn(f"{folder}: skipped {len(skipped)} unreadable image(s), e.g. {skipped[0]}",
                          UserWarning, stacklevel=2)
        if not samples:
            raise DataError(f"{folder}: no readable images (accepted extensions: {' '.join(IMG_EXTENSIONS)})")
        if empty:
            raise DataError(f"{folder}: class folder(s) with no readable image: {', '.join(empty)}")
        if image_size is None:
            w, h = first[0]
            size = (h, w)
        else:
            size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if channels is None:
            channels = 1 if first[1] in GRAY_MODES else 3
        if channels not in (1, 3):
            raise DataError(f"channels must be 1 or 3, got {channels}")
        return cls(folder, samples, classes, size, channels, name=f"imagefolder:{folder}", skipped=skipped)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[i]
        return decode_image(path, self.image_size, self.channels), label

    def __repr__(self) -> str:
        return (f"FolderDataset({str(self.root)!r}, n={len(self)}, classes={self.num_classes}, "
                f"image_shape={self.image_shape}, skipped={len(self.skipped)})")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, *self.image_size)  # type: ignore[return-value]

    def _stats(self) -> None:
        g = torch.Generator().manual_seed(0)
        pick = torch.randperm(len(self), generator=g)[:256].tolist()
        mean, std = channel_stats(torch.stack([self[i][0] for i in pick]))
        self._mean, self._std = mean, std

    @property
    def mean(self) -> tuple[float, ...]:
        if self._mean is None:
            self._stats()
        return self._mean  # type: ignore[return-value]

    @mean.setter
    def mean(self, value) -> None:  # normalise like another split (the training split's statistics)
        self._mean = tuple(float(v) for v in value)

    @property
    def std(self) -> tuple[float, ...]:
        if self._std is None:
            self._stats()
        return self._std  # type: ignore[return-value]

    @std.setter
    def std(self, value) -> None:
        self._std = tuple(float(v) for v in value)

    def class_counts(self) -> torch.Tensor:
        return torch.bincount(self.labels, minlength=self.num_classes)

    def subset(self, indices, name: str | None = None) -> FolderDataset:
        idx = torch.as_tensor(indices, dtype=torch.int64).tolist()
        return FolderDataset(self.root, [self.samples[i] for i in idx], self.classes, self.image_size,
                             self.channels, name or self.name, self.mean, self.std, self.skipped)

    def to_array(self):
        """Decode every image once into an :class:`ArrayDataset` (for small folders: the fast path)."""
        images = torch.empty((len(self), *self.image_shape), dtype=torch.uint8)
        for i in range(len(self)):
            images[i] = self[i][0]
        return ArrayDataset(images, self.labels.clone(), self.classes, self.name, self.mean, self.std)
