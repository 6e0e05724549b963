"""Evaluation: loss, top-1, top-5, per-class accuracy and the confusion matrix (torchmetrics), with TTA.

Under DistributedDataParallel each process evaluates a disjoint shard (``rank::world_size``) and
torchmetrics sums the metric states across processes in ``compute()``; the loss sum is
all-reduced. The result is the metric over the whole set, exactly as one process would get.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models._base import AuxOutputs
from cnnlab.train.distributed import shard_for_eval


def logits_of(output: Any) -> torch.Tensor:
    return output.logits if isinstance(output, AuxOutputs) else output


def _shifted(x: torch.Tensor, p: int, offsets) -> list[torch.Tensor]:
    padded = F.pad(x, (p, p, p, p), mode="replicate")
    h, w = x.shape[-2:]
    return [padded[..., p + dy:p + dy + h, p + dx:p + dx + w] for dy, dx in offsets]


def tta_views(x: torch.Tensor, mode: str) -> list[torch.Tensor]:
    """The test-time views of a batch: the batch, its horizontal flip (``flip``), and
    ``crop``: four diagonal shifts by ~1/14 of the side with edge replication (the random-crop-with-
    padding augmentation's extreme positions), or ``shift``: the four one-pixel shifts up, down, left
    and right -- of the batch and, with ``flip``, of its flip too (airbench's translate TTA, Jordan 2024)."""
    views = [x]
    if "flip" in mode:
        views.append(x.flip(-1))
    if "crop" in mode:
        p = max(1, x.shape[-1] // 14)
        views += _shifted(x, p, ((-p, -p), (-p, p), (p, -p), (p, p)))
    if "shift" in mode:
        one = ((-1, 0), (1, 0), (0, -1), (0, 1))
        views += [s for v in views[:2] for s in _shifted(v, 1, one)]
    return views


def predict_probs(model: nn.Module, x: torch.Tensor, tta: str = "none") -> torch.Tensor:
    """Softmax probabilities averaged over the TTA views (one view without TTA)."""
    views = tta_views(x, tta) if tta != "none" else [x]
    probs = None
    for v in views:
        p = F.softmax(logits_of(model(v)).float(), dim=1)
        probs = p if probs is None else probs + p
    return probs / len(views)


class ClassificationMeter:
    """Accumulates loss, top-1/top-5 and the confusion matrix over batches (torchmetrics states)."""

    def __init__(self, num_classes: int, device: torch.device | str = "cpu", sync: bool = True):
        from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

        self.num_classes = num_classes
        self.sync = sync  # sum over processes (each saw a disjoint shard)
        self.confusion = MulticlassConfusionMatrix(num_classes, sync_on_compute=sync).to(device)
        self.top5 = MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro",
                                       sync_on_compute=sync).to(device)
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.count = torch.zeros((), dtype=torch.float64, device=device)

    def update(self, probs: torch.Tensor, target: torch.Tensor, loss_sum: torch.Tensor) -> None:
        self.confusion.update(probs, target)
        self.top5.update(probs, target)
        self.loss_sum += loss_sum.detach().double()
        self.count += target.numel()

    def compute(self) -> dict[str, Any]:
        """Metrics over everything seen (all processes under DDP)."""
        loss_count = torch.stack([self.loss_sum, self.count])
        if self.sync and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(loss_count)
        cm = self.confusion.compute().long().cpu()
        top5 = float(self.top5.compute())
        n = int(cm.sum())
        per_class = (cm.diag().double() / cm.sum(1).clamp_min(1).double()).tolist()
        return {
            "loss": float(loss_count[0] / loss_count[1].clamp_min(1)),
            "top1": float(cm.diag().sum()) / max(1, n),
            "top5": top5,
            "per_class": per_class,
            "confusion": cm.tolist(),
            "n": n,
        }


def _is_dataset(data: Any) -> bool:
    from cnnlab.data import ArrayDataset, FolderDataset

    return isinstance(data, ArrayDataset | FolderDataset)


def _batches(data: Any, batch_size: int, device: torch.device, channels_last: bool) -> Iterable:
    """(x, y) batches of ``data``: a dataset (normalised by the data loader) or any (x, y) iterable."""
    from cnnlab.data import build_loader

    if _is_dataset(data):
        return build_loader(data, batch_size=batch_size, shuffle=False, device=device,
                            channels_last=channels_last)
    return data


@torch.inference_mode()
def evaluate(model: nn.Module, data: Any, *, num_classes: int | None = None, batch_size: int = 512,
             tta: str = "none", device: torch.device | str | None = None, amp: str = "off",
             channels_last: bool = False, prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
             shard: bool = True) -> dict[str, Any]:
    """Evaluate ``model`` on ``data`` (ArrayDataset or iterable of batches) in eval mode.

    Returns ``{"loss", "top1", "top5", "per_class", "confusion", "n"}``; accuracies in [0, 1],
    loss is the mean cross-entropy of the (TTA-averaged) probabilities. Under an initialised
    process group an ArrayDataset is sharded across processes (``shard=True``) and the metrics
    are reduced over all of them; any other input is evaluated whole by each process. The model's
    train/eval mode is restored afterwards.
    """
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    device = torch.device(device)
    if num_classes is None:
        num_classes = data.num_classes if hasattr(data, "num_classes") else None
    if num_classes is None:
        raise ValueError("evaluate() needs num_classes for a plain batch iterable")
    sharded = False
    if shard and _is_dataset(data):  # each process takes every world-th sample; the meters sum the shards
        data, sharded = shard_for_eval(data)
    meter = ClassificationMeter(num_classes, device, sync=sharded)
    was_training = model.training
    model.eval()
    autocast = _autocast(device, amp)
    try:
        for x, y in _batches(data, batch_size, device, channels_last):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if prepare is not None:
                x = prepare(x)
            with autocast:
                probs = predict_probs(model, x, tta)
            loss_sum = F.nll_loss(probs.clamp_min(1e-12).log(), y, reduction="sum")
            meter.update(probs, y, loss_sum)
    finally:
        model.train(was_training)
    return meter.compute()


def _autocast(device: torch.device, amp: str):
    if amp == "off" or device.type not in ("cuda", "cpu"):
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, data: Any, *, batch_size: int = 128,
                          device: torch.device | str | None = None, channels_last: bool = False,
                          prepare: Callable[[torch.Tensor], torch.Tensor] | None = None) -> nn.Module:
    """Re-estimate every BatchNorm's running mean and variance over ``data`` with the weights fixed: "precise BN"
    (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm", §3), via ``torch.optim.swa_utils.update_bn`` (a
    cumulative average of train-mode batch statistics). For a net trained in few steps, whose running averages
    (momentum 0.1) still carry the statistics of its early weights. ``data``: as :func:`evaluate` takes it."""
    from torch.optim.swa_utils import update_bn

    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    device = torch.device(device)
    inputs = (x.to(device) if prepare is None else prepare(x.to(device))
              for x, _ in _batches(data, batch_size, device, channels_last))
    update_bn(inputs, model)
    return model
