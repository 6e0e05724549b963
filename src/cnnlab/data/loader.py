"""Deterministic, shardable, resumable batch loaders.

:class:`InMemoryLoader` batches an :class:`~cnnlab.data.arrays.ArrayDataset` by indexing its uint8
tensor with a slice of a per-epoch permutation, then converts to float and normalises in one
``addcmul`` and augments the whole batch with tensor ops. :class:`FolderLoader` gives the same
interface over a torch ``DataLoader`` whose workers decode image files on the fly.

Determinism, resume and sharding (both loaders):

* the epoch's permutation is ``randperm(N)`` from a generator seeded by ``(seed, epoch)``: every
  process computes the same one;
* with ``world_size > 1`` rank ``r`` takes ``perm[r::world_size]`` after padding the permutation
  with its own head up to a multiple of ``world_size`` (or truncating it with ``drop_last``), as
  ``torch.utils.data.DistributedSampler`` does, so all ranks see the same number of batches;
* batch ``step`` is augmented with a generator seeded by ``(seed, epoch, step, rank)``, so
  ``iter_from(k)`` yields exactly the batches ``k, k+1, …`` of an uninterrupted epoch without replaying
  the first ``k`` and without any saved RNG state.

Call :meth:`set_epoch` before each epoch (like ``DistributedSampler``): the loader never advances it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from cnnlab.data.augment import BatchAugment
from cnnlab.data.seeding import mix_seed
from cnnlab.errors import ConfigError

_PERM, _AUG = 0x5045524D, 0x415547  # domain tags: permutation vs augmentation streams


def epoch_permutation(n: int, seed: int, epoch: int, shuffle: bool = True) -> torch.Tensor:
    """The permutation of ``range(n)`` used in ``epoch`` (identity when not shuffling)."""
    if not shuffle:
        return torch.arange(n)
    g = torch.Generator().manual_seed(mix_seed(_PERM, seed, epoch))
    return torch.randperm(n, generator=g)


def shard_indices(perm: torch.Tensor, rank: int, world_size: int, drop_last: bool) -> torch.Tensor:
    """Rank ``rank``'s share of ``perm``: DistributedSampler's padding/truncation, then a stride."""
    n = perm.numel()
    if world_size == 1:
        return perm
    if drop_last:
        total = (n // world_size) * world_size
        perm = perm[:total]
    else:
        total = math.ceil(n / world_size) * world_size
        if total > n:
            reps = math.ceil((total - n) / n)
            perm = torch.cat([perm, perm.repeat(reps)[: total - n]])
    return perm[rank:total:world_size]


class ShardedBatches:
    """Index bookkeeping shared by both loaders: epoch, permutation, shard, batch slicing, augment seeds."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, drop_last: bool, seed: int, rank: int,
                 world_size: int):
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if n == 0:
            raise ConfigError("the dataset is empty")
        self.num_examples = n
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self._cache: tuple[int, torch.Tensor] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def num_samples(self) -> int:
        """Samples this rank sees per epoch (incl. DistributedSampler-style padding)."""
        n, w = self.num_examples, self.world_size
        return n // w if self.drop_last else math.ceil(n / w)

    def __len__(self) -> int:
        m = self.num_samples
        return m // self.batch_size if self.drop_last else math.ceil(m / self.batch_size)

    def epoch_indices(self) -> torch.Tensor:
        """This rank's dataset indices for the current epoch, in batch order."""
        if self._cache is None or self._cache[0] != self.epoch:
            perm = epoch_permutation(self.num_examples, self.seed, self.epoch, self.shuffle)
            self._cache = (self.epoch, shard_indices(perm, self.rank, self.world_size, self.drop_last))
        return self._cache[1]

    def batch_generator(self, step: int) -> torch.Generator:
        """The augmentation generator of batch ``step`` in the current epoch on this rank."""
        return torch.Generator().manual_seed(mix_seed(_AUG, self.seed, self.epoch, step, self.rank))

    def _check_start(self, start_step: int) -> int:
        if start_step < 0:
            raise ConfigError(f"start_step must be >= 0, got {start_step}")
        return min(start_step, len(self))


class BatchFinisher:
    """uint8 batch -> float normalised, augmented, on ``device``: the part both loaders share."""

    def __init__(self, mean, std, augment: BatchAugment | None, device, channels_last: bool, normalize: bool):
        self.device = torch.device(device)
        self.augment = augment if augment is not None and augment.active else None
        self.channels_last = channels_last
        c = len(mean)
        if normalize:
            m = torch.tensor(mean, dtype=torch.float32)
            s = torch.tensor(std, dtype=torch.float32)
            scale, bias = 1.0 / (255.0 * s), -m / s
        else:
            scale, bias = torch.full((c,), 1.0 / 255.0), torch.zeros(c)
        # (x/255 - mean)/std == x * scale + bias, one fused addcmul per batch.
        self.scale = scale.view(1, c, 1, 1).to(self.device)
        self.bias = bias.view(1, c, 1, 1).to(self.device)
        self.pin = self.device.type == "cuda"

    def to_device(self, t: torch.Tensor) -> torch.Tensor:
        if t.device == self.device:
            return t
        if self.pin and t.device.type == "cpu":
            t = t.pin_memory()
        return t.to(self.device, non_blocking=self.pin)

    def __call__(self, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        x = self.to_device(x)
        if self.augment is not None:
            x = self.augment.geometric(x, g)
        x = torch.addcmul(self.bias, x.to(torch.float32), self.scale)
        if self.augment is not None:
            x = self.augment.photometric(x, g)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def _as_augment(augment, dataset) -> BatchAugment | None:
    if augment is None or isinstance(augment, BatchAugment):
        return augment
    if isinstance(augment, str):
        return BatchAugment.from_spec(augment, dataset=dataset)
    raise ConfigError(f"augment must be a spec string or a BatchAugment, got {type(augment).__name__}")


class InMemoryLoader(ShardedBatches):
    """Batches of ``(x float32 [B,C,H,W] normalised, y int64 [B])`` from an in-memory dataset.

    ``augment``: a :class:`BatchAugment` or a spec string such as ``"crop,flip"``. ``mean``/``std``
    override the dataset's normalisation (e.g. a pretrained model's). On CUDA the uint8 dataset is
    copied to the device once when it is at most ``resident_bytes`` (all of Fashion-MNIST is 47 MB),
    otherwise each batch goes through pinned memory with a non-blocking copy. ``return_indices`` adds
    the batch's dataset indices as a third item (sample weights for boosting, de-duplicating the
    padded samples of a sharded evaluation).
    """

    def __init__(self, dataset, batch_size: int = 256, shuffle: bool = True, drop_last: bool = False,
                 augment: BatchAugment | str | None = None, seed: int = 0, device: str | torch.device = "cpu",
                 rank: int = 0, world_size: int = 1, channels_last: bool = False, normalize: bool = True,
                 mean=None, std=None, return_indices: bool = False, resident_bytes: int = 4 << 30):
        super().__init__(len(dataset), batch_size, shuffle, drop_last, seed, rank, world_size)
        self.dataset = dataset
        self.augment = _as_augment(augment, dataset)
        self.return_indices = return_indices
        self._finish = BatchFinisher(dataset.mean if mean is None else mean, dataset.std if std is None else std,
                                 self.augment, device, channels_last, normalize)
        self.device = self._finish.device
        images, labels = dataset.images, dataset.labels
        if self.device.type != "cpu" and images.numel() <= resident_bytes:
            images, labels = images.to(self.device), labels.to(self.device)
        self._images, self._labels = images.contiguous(), labels

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        return self.iter_from(0)

    def iter_from(self, start_step: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
        """Batches ``start_step, …, len-1`` of the current epoch, identical to those of a full pass."""
        idx = self.epoch_indices()
        contiguous = not self.shuffle and self.world_size == 1
        bs, images, labels = self.batch_size, self._images, self._labels
        on_dev = images.device == self.device
        idx_dev = idx.to(images.device) if images.device != idx.device else idx
        for step in range(self._check_start(start_step), len(self)):
            lo, hi = step * bs, min((step + 1) * bs, idx.numel())
            if contiguous:  # no copy at all: a view of the dataset
                x, y = images[lo:hi], labels[lo:hi]
            else:
                sel = idx_dev[lo:hi]
                x, y = images.index_select(0, sel), labels.index_select(0, sel)
            g = self.batch_generator(step) if self._finish.augment is not None else None
            x = self._finish(x, g)
            if not on_dev:
                y = self._finish.to_device(y)
            yield (x, y, idx[lo:hi]) if self.return_indices else (x, y)


class FolderLoader(ShardedBatches):
    """The :class:`InMemoryLoader` interface over files decoded on the fly by ``DataLoader`` workers.

    Workers return uint8 tensors; normalisation and the batched augmentation run in the main
    process with the same seeding as the in-memory path, so resume and sharding behave the same.
    """

    def __init__(self, dataset, batch_size: int = 64, shuffle: bool = True, drop_last: bool = False,
                 augment: BatchAugment | str | None = None, seed: int = 0, device: str | torch.device = "cpu",
                 rank: int = 0, world_size: int = 1, channels_last: bool = False, normalize: bool = True,
                 mean=None, std=None, return_indices: bool = False, num_workers: int = 2):
        super().__init__(len(dataset), batch_size, shuffle, drop_last, seed, rank, world_size)
        self.dataset = dataset
        self.augment = _as_augment(augment, dataset)
        self.return_indices = return_indices
        self.num_workers = num_workers
        self._finish = BatchFinisher(dataset.mean if mean is None else mean, dataset.std if std is None else std,
                                 self.augment, device, channels_last, normalize)
        self.device = self._finish.device

    def __iter__(self):
        return self.iter_from(0)

    def iter_from(self, start_step: int = 0):
        from torch.utils.data import DataLoader

        idx = self.epoch_indices()
        start = self._check_start(start_step)
        bs = self.batch_size
        batches = [idx[s * bs:min((s + 1) * bs, idx.numel())].tolist() for s in range(start, len(self))]
        if not batches:
            return
        dl = DataLoader(self.dataset, batch_sampler=batches, num_workers=self.num_workers,
                        pin_memory=self.device.type == "cuda", persistent_workers=False)
        for step, (x, y) in zip(range(start, len(self)), dl):
            g = self.batch_generator(step) if self._finish.augment is not None else None
            x = self._finish(x, g)
            y = self._finish.to_device(y.long())
            yield (x, y, torch.tensor(batches[step - start])) if self.return_indices else (x, y)
