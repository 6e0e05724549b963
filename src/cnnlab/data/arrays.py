"""The bottom of ``cnnlab.data``: datasets held in memory as uint8 tensors, their statistics, where data lives.

:class:`ArrayDataset` (images + one label each) and :class:`DenseDataset` (images + per-pixel masks and/or
boxes; the conventions are stated in :mod:`cnnlab.data.dense`). Every format module (idx, CIFAR, image
folder, VOC, COCO, scenes) builds one of these; the loaders batch them; :mod:`cnnlab.data.catalog` picks a
format by name. This module imports nothing else of ``cnnlab.data``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from cnnlab.errors import DataError

SYSTEM_DATA_DIR = Path("/usr/share/datasets")
"""Where Debian's ``dataset-*`` packages install data (``dataset-fashion-mnist``)."""


def default_data_dir() -> Path:
    """``$CNNLAB_DATA`` or ``~/.cache/cnnlab/data``: where ``--download`` puts files."""
    env = os.environ.get("CNNLAB_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cnnlab" / "data"


def split_name(split: str) -> str:
    s = {"train": "train", "training": "train", "test": "test", "t10k": "test"}.get(split)
    if s is None:
        raise DataError(f"unknown split {split!r}; use 'train' or 'test' (make a validation split with "
                        "stratified_split)")
    return s


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


def normalize_uint8(images: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 images ``[C, H, W]`` or ``[N, C, H, W]`` -> float ``(x / 255 - mean) / std`` per channel, the
    inputs every model of a dataset or checkpoint with these ``mean``/``std`` was trained on."""
    m = torch.tensor(list(mean), dtype=torch.float32).view(-1, 1, 1)
    s = torch.tensor(list(std), dtype=torch.float32).view(-1, 1, 1)
    return (images.float() / 255 - m) / s


def denormalize_to_uint8(x: torch.Tensor, mean, std) -> torch.Tensor:
    """The inverse of :func:`normalize_uint8`: ``x * std + mean`` back to uint8 pixels (rounded, clipped)."""
    m = torch.as_tensor(mean, dtype=torch.float32, device=x.device).reshape(-1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=x.device).reshape(-1, 1, 1)
    return (x.float() * s + m).mul(255).round().clamp(0, 255).to(torch.uint8)


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


IGNORE = 255


class DenseDataset:
    """Images + per-pixel masks and/or boxes, all in memory (the dense counterpart of ``ArrayDataset``).

    ``images`` uint8 ``[N, C, H, W]``; ``masks`` uint8 ``[N, H, W]`` (0 background, 1..K-1, 255 ignore)
    or ``None``; ``boxes``/``labels`` lists of N float32 ``[n_i, 4]`` xyxy / int64 ``[n_i]`` tensors or
    ``None``; ``classes[0] == "background"``. ``mean``/``std`` are per-channel training-split statistics
    in [0, 1] units (computed from ``images`` when not given; a :meth:`subset` keeps them).
    ``extras`` holds further per-object lists aligned with ``boxes`` (e.g. a scene item's source index),
    ``meta`` free dataset-level facts (settings, cache file, skipped files).
    """

    def __init__(self, images: torch.Tensor, masks: torch.Tensor | None = None,
                 boxes: Sequence[torch.Tensor] | None = None, labels: Sequence[torch.Tensor] | None = None,
                 classes: Sequence[str] = ("background",), name: str = "dense", mean=None, std=None,
                 extras: dict[str, list[torch.Tensor]] | None = None, meta: dict | None = None,
                 validate: bool = True):
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
            raise DataError(f"{name}: images must be a uint8 tensor [N, C, H, W], got "
                            f"{getattr(images, 'dtype', type(images).__name__)} {tuple(getattr(images, 'shape', ()))}")
        n, _, h, w = images.shape
        classes = list(classes)
        if len(classes) < 2 or classes[0] != "background":
            raise DataError(f"{name}: classes must start with 'background' and name at least one object class, "
                            f"got {classes[:4]}")
        if masks is None and boxes is None:
            raise DataError(f"{name}: a dense dataset needs masks, boxes or both")
        if masks is not None and (masks.dtype != torch.uint8 or tuple(masks.shape) != (n, h, w)):
            raise DataError(f"{name}: masks must be uint8 [{n}, {h}, {w}], got {masks.dtype} {tuple(masks.shape)}")
        if (boxes is None) != (labels is None):
            raise DataError(f"{name}: boxes and labels come together")
        if boxes is not None:
            boxes = [torch.as_tensor(b, dtype=torch.float32).reshape(-1, 4) for b in boxes]
            labels = [torch.as_tensor(lb, dtype=torch.int64).reshape(-1) for lb in labels]
            if len(boxes) != n or len(labels) != n:
                raise DataError(f"{name}: {n} images but {len(boxes)} box lists and {len(labels)} label lists")
        self.images, self.masks, self.boxes, self.labels = images, masks, boxes, labels
        self.classes = classes
        self.name = name
        self.extras = {k: list(v) for k, v in (extras or {}).items()}
        self.meta = dict(meta or {})
        if validate:
            self._validate()
        if mean is None or std is None:
            mean, std = channel_stats(images)
        if len(mean) != images.shape[1] or len(std) != images.shape[1]:
            raise DataError(f"{name}: mean/std need {images.shape[1]} channel values")
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    def _validate(self) -> None:
        k = len(self.classes)
        if self.masks is not None and self.masks.numel():
            bad = (self.masks >= k) & (self.masks != IGNORE)
            if bool(bad.any()):
                i = int(bad.flatten(1).any(1).nonzero()[0])
                raise DataError(f"{self.name}: mask of image {i} holds value {int(self.masks[i][bad[i]][0])}; "
                                f"accepted: 0..{k - 1} ({k} classes) and 255 (ignore)")
        if self.boxes is not None:
            _, _, h, w = self.images.shape
            for i, (b, lb) in enumerate(zip(self.boxes, self.labels)):
                check_boxes(b, lb, (h, w), k, where=f"{self.name}: image {i}")

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        target: dict[str, torch.Tensor] = {}
        if self.masks is not None:
            target["mask"] = self.masks[i]
        if self.boxes is not None:
            target["boxes"], target["labels"] = self.boxes[i], self.labels[i]
        return self.images[i], target

    def __repr__(self) -> str:
        kinds = "+".join(k for k, on in (("masks", self.has_masks), ("boxes", self.has_boxes)) if on)
        return (f"DenseDataset({self.name!r}, n={len(self)}, image_shape={self.image_shape}, "
                f"classes={self.num_classes}, {kinds})")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def has_masks(self) -> bool:
        return self.masks is not None

    @property
    def has_boxes(self) -> bool:
        return self.boxes is not None

    @property
    def num_boxes(self) -> int:
        return sum(b.shape[0] for b in self.boxes) if self.boxes is not None else 0

    def subset(self, indices, name: str | None = None) -> DenseDataset:
        """The samples at ``indices`` (repeats allowed), with the same classes and mean/std."""
        idx = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        pick = idx.tolist()
        return DenseDataset(
            self.images[idx], None if self.masks is None else self.masks[idx],
            None if self.boxes is None else [self.boxes[i] for i in pick],
            None if self.labels is None else [self.labels[i] for i in pick],
            self.classes, name or self.name, self.mean, self.std,
            {k: [v[i] for i in pick] for k, v in self.extras.items()}, self.meta, validate=False)

    def instance_counts(self) -> torch.Tensor:
        """Boxes per class, int64 ``[K]`` (index 0, background, is 0)."""
        if self.labels is None or not self.labels:
            return torch.zeros(self.num_classes, dtype=torch.int64)
        return torch.bincount(torch.cat(self.labels), minlength=self.num_classes)

    def pixel_counts(self) -> torch.Tensor:
        """Mask pixels per class, int64 ``[K]`` (ignore pixels not counted)."""
        if self.masks is None:
            return torch.zeros(self.num_classes, dtype=torch.int64)
        counts = torch.zeros(IGNORE + 1, dtype=torch.int64)
        for i in range(0, len(self), 1024):  # uint8 bincount in chunks: no int64 copy of all masks
            counts += torch.bincount(self.masks[i:i + 1024].flatten(), minlength=IGNORE + 1)
        return counts[:self.num_classes].clone()

    def class_counts(self) -> torch.Tensor:
        """Objects per class when there are boxes, else pixels per class."""
        return self.instance_counts() if self.has_boxes else self.pixel_counts()


def check_boxes(boxes: torch.Tensor, labels: torch.Tensor, size: tuple[int, int], num_classes: int,
                where: str) -> None:
    """A :class:`DataError` naming ``where`` and the box when a box is not ``0 <= x0 < x1 <= W`` (same for
    y) or a label is not in ``1..K-1``."""
    h, w = size
    if boxes.shape[0] != labels.shape[0]:
        raise DataError(f"{where}: {boxes.shape[0]} boxes but {labels.shape[0]} labels")
    if not boxes.numel():
        return
    x0, y0, x1, y1 = boxes.unbind(1)
    bad = ~((x0 >= 0) & (y0 >= 0) & (x1 <= w) & (y1 <= h) & (x1 > x0) & (y1 > y0)) | ~boxes.isfinite().all(1)
    if bool(bad.any()):
        j = int(bad.nonzero()[0])
        raise DataError(f"{where}: box {j} {[round(v, 2) for v in boxes[j].tolist()]} (x0, y0, x1, y1) lies "
                        f"outside the {w}x{h} image or is empty; accepted: 0 <= x0 < x1 <= {w}, 0 <= y0 < y1 <= {h}")
    badl = (labels < 1) | (labels >= num_classes)
    if bool(badl.any()):
        j = int(badl.nonzero()[0])
        raise DataError(f"{where}: box {j} has label {int(labels[j])}; accepted: 1..{num_classes - 1} "
                        "(0 is background)")
