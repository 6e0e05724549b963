"""A tiny, deterministic, learnable image set for tests and demos (``synthetic``, ``synthetic-rgb``)."""

from __future__ import annotations

import torch

from cnnlab.data.arrays import ArrayDataset, channel_stats


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


SYNTHETIC_DATASETS = {"synthetic": dict(channels=1, image_size=28), "synthetic-rgb": dict(channels=3, image_size=32)}
_SYNTHETIC_SIZES = {"train": 1000, "test": 500}


def load_synthetic(name: str, split: str, **options) -> ArrayDataset:
    opts = {**SYNTHETIC_DATASETS[name], "num_classes": 10, **options}
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
