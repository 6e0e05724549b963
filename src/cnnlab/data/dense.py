"""Dense-prediction data: images with per-pixel masks and/or boxes, held in memory, batched with joint augmentation.

Conventions (shared with ``cnnlab.segmentation`` and ``cnnlab.detection``):

* class 0 is ``"background"``, object classes are ``1..K-1``; a mask value of 255 means *ignore*
  (VOC's object boundaries, padding);
* boxes are float32 ``[n, 4]`` ``(x0, y0, x1, y1)`` in continuous pixel coordinates (torchvision's
  convention): a box covers the pixels ``x0 <= j < x1``, so a flip maps ``x`` to ``W - x`` exactly and
  the tight box of mask pixels ``j_min..j_max`` is ``[j_min, j_max + 1)``; box labels use the mask's indices.

:class:`DenseLoader` shares :class:`~cnnlab.data.loader.InMemoryLoader`'s epoch permutation, DDP-style
sharding and per-batch ``(seed, epoch, step, rank)`` augmentation seeds, so ``iter_from(k)`` resumes a
pass exactly. Its augmentation moves image, mask and boxes together (spec ``"scale:0.75-1.25,crop:16,flip"``):

* ``scale[:LO-HI]`` -- zoom each sample by ``s ~ U(LO, HI)`` about the image centre, image bilinear,
  mask nearest (the random-resize step of torchvision's segmentation reference recipe, kept at a fixed
  canvas size);
* ``crop[:PAD]`` -- pad every side by PAD and crop ``H x W`` back at a random offset (Krizhevsky et al.
  2012), integer-exact;
* ``flip`` -- horizontal flip with probability 0.5.

They run in that order. Pixels that come from outside the image are black in the image and 255
(ignore) in the mask, as torchvision's segmentation reference pads its targets; boxes are shifted,
scaled, clipped to the image and dropped when less than ``min_box`` pixels wide or high remain.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cnnlab.data.arrays import IGNORE, DenseDataset, check_boxes  # noqa: F401 - part of this module's API
from cnnlab.data.loader import BatchFinisher, ShardedBatches
from cnnlab.errors import ConfigError, DataError


def random_split(dataset: DenseDataset, val_fraction: float = 0.1, seed: int = 0) -> tuple[DenseDataset, DenseDataset]:
    """A seeded ``(train, val)`` split of a dense dataset (``round(N * val_fraction)`` validation images)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = len(dataset)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    k = round(n * val_fraction)
    val, train = torch.sort(perm[:k]).values, torch.sort(perm[k:]).values
    return dataset.subset(train, f"{dataset.name}-train"), dataset.subset(val, f"{dataset.name}-val")


# -------------------------------------------------------------------------------- joint augmentation

@dataclass
class DenseAugment:
    """Geometric augmentation applied identically to images, masks and boxes (see the module docstring)."""

    scale: tuple[float, float] | None = None
    crop: int | None = None
    flip: bool = False
    min_box: float = 1.0

    @classmethod
    def from_spec(cls, spec: str | DenseAugment | None) -> DenseAugment:
        """Parse ``"flip"``, ``"crop:16,flip"``, ``"scale:0.5-2,crop,flip"``, ``"none"`` or ``""``."""
        if isinstance(spec, DenseAugment):
            return spec
        if spec is not None and not isinstance(spec, str):
            raise ConfigError(f"augment must be a spec string or a DenseAugment, got {type(spec).__name__}")
        kw: dict = {}
        for item in (spec or "none").replace(" ", "").split(","):
            if item in ("", "none"):
                continue
            name, _, value = item.partition(":")
            if name == "flip":
                if value:
                    raise ConfigError(f"flip takes no value (got {item!r})")
                kw["flip"] = True
            elif name == "crop":
                try:
                    kw["crop"] = int(value) if value else 16
                except ValueError:
                    raise ConfigError(f"augmentation {item!r}: {value!r} is not a whole number of pixels") from None
                if kw["crop"] < 0:
                    raise ConfigError(f"augmentation {item!r}: the padding must be >= 0")
            elif name == "scale":
                lo, sep, hi = (value or "0.75-1.25").partition("-")
                try:
                    rng = (float(lo), float(hi) if sep else float(lo))
                except ValueError:
                    raise ConfigError(f"augmentation {item!r}: expected scale:LO-HI, e.g. scale:0.75-1.25") from None
                if not (0 < rng[0] <= rng[1]) or not all(map(math.isfinite, rng)):
                    raise ConfigError(f"augmentation {item!r}: need 0 < LO <= HI")
                kw["scale"] = rng
            else:
                raise ConfigError(f"unknown dense augmentation {name!r} in {spec!r}; known: scale, crop, flip, none "
                                  "(applied to image, mask and boxes together)")
        return cls(**kw)

    @property
    def active(self) -> bool:
        return bool(self.scale and self.scale != (1.0, 1.0)) or bool(self.crop) or self.flip

    @property
    def spec(self) -> str:
        parts = []
        if self.scale:
            parts.append(f"scale:{self.scale[0]:g}-{self.scale[1]:g}")
        if self.crop:
            parts.append(f"crop:{self.crop}")
        if self.flip:
            parts.append("flip")
        return ",".join(parts) or "none"

    def __repr__(self) -> str:
        return f"DenseAugment({self.spec!r})"

    def __call__(self, x: torch.Tensor, mask: torch.Tensor | None, boxes: list[torch.Tensor] | None,
                 labels: list[torch.Tensor] | None, generator: torch.Generator):
        """Augment a batch: ``x [B,C,H,W]`` (uint8 or float), ``mask`` uint8 ``[B,H,W]`` or None, per-image
        boxes/labels or None. Random draws come from ``generator`` (CPU) in a fixed order, whatever is present."""
        b, _, h, w = x.shape
        dev = x.device
        s = oy = ox = fl = None
        if self.scale and self.scale != (1.0, 1.0):
            lo, hi = self.scale
            s = lo + (hi - lo) * torch.rand(b, generator=generator, dtype=torch.float64)
        if self.crop:
            oy = torch.randint(0, 2 * self.crop + 1, (b,), generator=generator)
            ox = torch.randint(0, 2 * self.crop + 1, (b,), generator=generator)
        if self.flip:
            fl = torch.rand(b, generator=generator) < 0.5
        if s is not None:
            x, mask = _zoom(x, mask, s)
        if oy is not None or fl is not None:
            p = self.crop or 0
            oy_, ox_ = (oy, ox) if oy is not None else (torch.full((b,), p), torch.full((b,), p))
            fl_ = fl if fl is not None else torch.zeros(b, dtype=torch.bool)
            x = _crop_flip(x, oy_.to(dev), ox_.to(dev), fl_.to(dev), p, 0)
            if mask is not None:
                mask = _crop_flip(mask[:, None], oy_.to(dev), ox_.to(dev), fl_.to(dev), p, IGNORE)[:, 0]
        if boxes is not None:
            boxes, labels = _move_boxes(boxes, labels, (h, w), s, oy, ox, self.crop or 0, fl, self.min_box)
        return x, mask, boxes, labels


def _zoom(x: torch.Tensor, mask: torch.Tensor | None, s: torch.Tensor):
    """Scale each sample by ``s[b]`` about the image centre at the same canvas size (``grid_sample`` with
    ``align_corners=False``: output pixel centre ``u`` reads input ``u / s``; so a continuous coordinate maps
    as ``x -> (x - W/2) s + W/2``)."""
    b = x.shape[0]
    inv = (1.0 / s).to(torch.float32)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = inv
    theta[:, 1, 1] = inv
    theta = theta.to(x.device)
    xf = x.float()
    grid = F.affine_grid(theta, list(xf.shape), align_corners=False)
    out = F.grid_sample(xf, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if not x.is_floating_point():
        out = out.round_().clamp_(0, 255).to(x.dtype)
    if mask is not None:  # shift by one so that "outside" (zeros padding) is distinguishable -> 255 ignore
        m = F.grid_sample(mask[:, None].float() + 1, grid, mode="nearest", padding_mode="zeros",
                          align_corners=False)[:, 0]
        mask = torch.where(m == 0, torch.full_like(m, IGNORE), m - 1).to(torch.uint8)
    return out, mask


def _crop_flip(x: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor, flip: torch.Tensor, pad: int,
               fill: int) -> torch.Tensor:
    """Pad by ``pad`` (value ``fill``), crop ``H x W`` at ``(oy, ox)``, mirror where ``flip``: one ``gather``."""
    b, c, h, w = x.shape
    hp, wp = h + 2 * pad, w + 2 * pad
    cols = torch.arange(w, device=x.device)
    cols = torch.where(flip[:, None], cols.flip(0), cols) + ox[:, None]
    rows = (torch.arange(h, device=x.device)[None, :] + oy[:, None]) * wp
    flat = (rows[:, :, None] + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
    xp = F.pad(x, (pad, pad, pad, pad), value=fill) if pad else x
    return xp.reshape(b, c, hp * wp).gather(2, flat).view(b, c, h, w)


def _move_boxes(boxes, labels, size, s, oy, ox, pad, fl, min_box):
    """The box side of the augmentation, for all boxes of the batch at once (then split per image)."""
    h, w = size
    counts = [bx.shape[0] for bx in boxes]
    if not sum(counts):
        return boxes, labels
    dev = boxes[0].device
    owner = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts)).to(dev)
    bx = torch.cat(boxes).to(torch.float64)
    lb = torch.cat(labels)
    half = torch.tensor([w / 2, h / 2, w / 2, h / 2], dtype=torch.float64, device=dev)
    if s is not None:
        bx = (bx - half) * s.to(dev)[owner, None] + half
    if oy is not None:
        shift = torch.stack([ox, oy, ox, oy], 1).to(device=dev, dtype=torch.float64)
        bx = bx + pad - shift[owner]
    bx = torch.stack([bx[:, 0].clamp(0, w), bx[:, 1].clamp(0, h), bx[:, 2].clamp(0, w), bx[:, 3].clamp(0, h)], 1)
    if fl is not None:
        f = fl.to(dev)[owner]
        bx = torch.where(f[:, None], torch.stack([w - bx[:, 2], bx[:, 1], w - bx[:, 0], bx[:, 3]], 1), bx)
    keep = ((bx[:, 2] - bx[:, 0]) >= min_box) & ((bx[:, 3] - bx[:, 1]) >= min_box)
    bx = bx.to(torch.float32)
    kept_counts = torch.bincount(owner[keep], minlength=len(counts)).tolist()
    return list(bx[keep].split(kept_counts)), list(lb[keep].split(kept_counts))


# ------------------------------------------------------------------------------------------- loader

class DenseLoader(ShardedBatches):
    """Batches ``(x, target)`` of a :class:`DenseDataset`.

    ``x`` float32 ``[B, C, H, W]`` normalised with the dataset's (or the given) mean/std, on ``device``;
    ``target`` = ``{"mask": int64 [B, H, W]}`` (with masks), ``{"boxes": [float32 [n_i, 4]], "labels":
    [int64 [n_i]]}`` (with boxes) and ``"index"`` (int64 ``[B]``, dataset indices; padded repeats of a
    sharded pass show up here), all on ``device``. On CUDA the uint8 images and masks are copied to the
    device once when at most ``resident_bytes``.
    """

    def __init__(self, dataset: DenseDataset, batch_size: int = 16, shuffle: bool = True, drop_last: bool = False,
                 augment: DenseAugment | str | None = None, seed: int = 0, device: str | torch.device = "cpu",
                 rank: int = 0, world_size: int = 1, channels_last: bool = False, mean=None, std=None,
                 resident_bytes: int = 4 << 30):
        if not isinstance(dataset, DenseDataset):
            raise ConfigError(f"DenseLoader needs a DenseDataset, got {type(dataset).__name__}")
        super().__init__(len(dataset), batch_size, shuffle, drop_last, seed, rank, world_size)
        self.dataset = dataset
        self.augment = DenseAugment.from_spec(augment)
        self._finish = BatchFinisher(dataset.mean if mean is None else mean, dataset.std if std is None else std,
                                 None, device, channels_last, normalize=True)
        self.device = self._finish.device
        self._resident_bytes = resident_bytes
        self._hold(dataset)

    def _hold(self, dataset: DenseDataset) -> None:
        images, masks = dataset.images, dataset.masks
        size = images.numel() + (masks.numel() if masks is not None else 0)
        if self.device.type != "cpu" and size <= self._resident_bytes:
            images = images.to(self.device)
            masks = masks.to(self.device) if masks is not None else None
        self._images, self._masks = images.contiguous(), masks
        self._boxes = dataset.boxes
        if dataset.boxes is not None and self.device.type != "cpu":
            self._boxes = [b.to(self.device) for b in dataset.boxes]
        self._labels = dataset.labels
        if dataset.labels is not None and self.device.type != "cpu":
            self._labels = [lb.to(self.device) for lb in dataset.labels]

    def set_epoch(self, epoch: int) -> None:
        """The epoch's order and augmentation; a dataset that changes by epoch (a
        :class:`~cnnlab.data.scenes.SceneStream`) is moved to that epoch first."""
        super().set_epoch(epoch)
        if hasattr(self.dataset, "set_epoch") and getattr(self.dataset, "epoch", None) != self.epoch:
            self.dataset.set_epoch(self.epoch)
            if len(self.dataset) != self.num_examples:
                raise DataError(f"{self.dataset.name}: epoch {self.epoch} holds {len(self.dataset)} samples, "
                                f"epoch 0 held {self.num_examples}")
            self._hold(self.dataset)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, dict]]:
        return self.iter_from(0)

    def iter_from(self, start_step: int = 0) -> Iterator[tuple[torch.Tensor, dict]]:
        """Batches ``start_step, …, len-1`` of the current epoch, identical to those of a full pass."""
        idx = self.epoch_indices()
        bs, fin = self.batch_size, self._finish
        aug = self.augment if self.augment.active else None
        idx_dev = idx.to(self._images.device)
        for step in range(self._check_start(start_step), len(self)):
            lo, hi = step * bs, min((step + 1) * bs, idx.numel())
            sel = idx_dev[lo:hi]
            pick = idx[lo:hi].tolist()
            x = fin.to_device(self._images.index_select(0, sel))
            mask = fin.to_device(self._masks.index_select(0, sel)) if self._masks is not None else None
            boxes = [self._boxes[i] for i in pick] if self._boxes is not None else None
            labels = [self._labels[i] for i in pick] if self._labels is not None else None
            if aug is not None:
                x, mask, boxes, labels = aug(x, mask, boxes, labels, self.batch_generator(step))
            x = torch.addcmul(fin.bias, x.to(torch.float32), fin.scale)
            if fin.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            target: dict = {"index": fin.to_device(idx[lo:hi].clone())}
            if mask is not None:
                target["mask"] = mask.long()
            if boxes is not None:
                target["boxes"], target["labels"] = boxes, labels
            yield x, target


def build_dense_loader(dataset: DenseDataset, batch_size: int = 16, shuffle: bool = True, drop_last: bool = False,
                       augment: DenseAugment | str | None = None, seed: int = 0, device: str | torch.device = "cpu",
                       rank: int = 0, world_size: int = 1, channels_last: bool = False, mean=None,
                       std=None) -> DenseLoader:
    """A :class:`DenseLoader` over ``dataset`` (see there)."""
    return DenseLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, augment=augment,
                       seed=seed, device=device, rank=rank, world_size=world_size, channels_last=channels_last,
                       mean=mean, std=std)
