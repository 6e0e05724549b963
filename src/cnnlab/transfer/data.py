"""Data for transfer learning: the images prepared the way the pretrained weights expect.

* Normalisation is the weights' ``mean``/``std`` (ImageNet's for torchvision checkpoints), not the
  dataset's own; one-channel data uses the channel averages, because the model's first conv holds the
  summed RGB filters (``adapt_input_conv``; timm's approach), which makes a grey image look to the
  network like the same image in RGB.
* Array datasets (Fashion-MNIST, 28x28) stay small in memory and are rendered to the input size by
  ``fit``'s bilinear resize of each batch (the whole frame, no crop).
* Image folders are decoded once with the weights' eval transform -- shorter side to ``resize_size``,
  centre crop ``input_size``, their interpolation (torchvision's ``ImageClassification``) -- so training
  sees exactly what ``cnnlab predict`` feeds the model later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cnnlab.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")


def channel_stats_for(pre: dict[str, Any], channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The weights' mean/std for ``channels`` input channels (averaged for one channel)."""
    mean, std = tuple(pre["mean"]), tuple(pre["std"])
    if channels == len(mean):
        return mean, std
    if channels == 1:
        return (sum(mean) / len(mean),), (sum(std) / len(std),)
    raise ConfigError(f"the weights expect {len(mean)}-channel images; the data has {channels} channels")


def with_stats(ds, mean, std):
    """The same images and labels, normalised with ``mean``/``std`` (an :class:`ArrayDataset`)."""
    from cnnlab.data import ArrayDataset

    return ArrayDataset(ds.images, ds.labels, ds.classes, ds.name, mean, std)


def render_folder(ds, pre: dict[str, Any]) -> tuple[Any, int]:
    """Decode every image of a :class:`FolderDataset` with the eval transform of ``pre`` into an
    :class:`ArrayDataset` of uint8 ``[N, C, input, input]``. Returns it and the number of images that
    could not be decoded (skipped, like the folder's own unreadable files)."""
    from PIL import Image
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    from cnnlab.data import ArrayDataset

    interp = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC,
              "nearest": InterpolationMode.NEAREST}[pre["interpolation"]]
    size, resize = int(pre["input_size"]), int(pre["resize_size"])
    mode = "L" if ds.channels == 1 else "RGB"
    images, labels, bad = [], [], 0
    for path, label in ds.samples:
        try:
            with Image.open(path) as im:
                img = im.convert(mode)
        except (OSError, ValueError, SyntaxError):
            bad += 1
            continue
        img = TF.center_crop(TF.resize(img, resize, interpolation=interp, antialias=True), size)
        images.append(TF.pil_to_tensor(img))
        labels.append(label)
    if not images:
        raise DataError(f"{ds.root}: no readable images")
    mean, std = channel_stats_for(pre, ds.channels)
    return ArrayDataset(torch.stack(images), torch.tensor(labels), ds.classes, ds.name, mean, std), bad


def few_shot_indices(labels: torch.Tensor, shots: int, seed: int = 0, num_classes: int | None = None) -> torch.Tensor:
    """``shots`` indices per class, drawn without replacement by a seeded permutation (sorted).
    A class with fewer images than ``shots`` is an error naming it."""
    labels = torch.as_tensor(labels)
    n_cls = num_classes or int(labels.max()) + 1
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(n_cls):
        members = (labels == c).nonzero().flatten()
        if members.numel() < shots:
            raise DataError(f"shots={shots} but class {c} has only {members.numel()} images")
        picks.append(members[torch.randperm(members.numel(), generator=g)[:shots]])
    return torch.cat(picks).sort().values


def load_transfer_data(data: str, pre: dict[str, Any], data_dir: str | None = None
                       ) -> tuple[Any, Any, Any, int]:
    """``(train, val, test, skipped)`` for a dataset name or ``imagefolder:DIR``, normalised for the
    weights. A folder's ``train/``, ``val/`` and ``test/`` sub-folders are used when present (else the
    whole folder is ``train``); ``val``/``test`` are None when absent."""
    from cnnlab.data import load_dataset
    from cnnlab.data.folder import FolderDataset

    if data.startswith("imagefolder:"):
        root = Path(data.split(":", 1)[1]).expanduser()
        present = [s for s in SPLITS if (root / s).is_dir()]
        out: dict[str, Any] = {}
        skipped = 0
        for split in present or ["train"]:
            folder = FolderDataset.from_root(root, split=split)
            rendered, bad = render_folder(folder, pre)
            out[split] = rendered
            skipped += len(folder.skipped) + bad
        if "train" not in out:
            raise DataError(f"{root}: has {', '.join(present)} but no train/ sub-folder")
        classes = out["train"].classes
        for split, ds in out.items():
            if ds.classes != classes:
                raise DataError(f"{root}/{split} has classes {ds.classes}, train/ has {classes}")
        return out["train"], out.get("val"), out.get("test"), skipped
    train = load_dataset(data, split="train", data_dir=data_dir)
    test = load_dataset(data, split="test", data_dir=data_dir)
    mean, std = channel_stats_for(pre, train.image_shape[0])
    return with_stats(train, mean, std), None, with_stats(test, mean, std), 0
