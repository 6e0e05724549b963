"""Semantic segmentation as a :class:`~cnnlab.train.task.Task`: per-pixel cross-entropy, FCN metrics.

Loss: the per-pixel softmax cross-entropy of FCN (Long, Shelhamer & Darrell 2015, §3), averaged over
labelled pixels (mask value 255 = ignore, as in PASCAL VOC's object boundaries). Metrics: one
confusion matrix over the whole split, then pixel accuracy, mean accuracy, mean IU and
frequency-weighted IU (FCN §5) -- :class:`~cnnlab.segmentation.metrics.SegmentationMeter`. The
best epoch is picked by mean IU; the training display shows pixel accuracy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.segmentation.metrics import label_map
from cnnlab.train.task import (
    DataSpec,
    DenseTask,
    StepContext,
    StepOutput,
    add_input_noise,
    register_task,
    resize_input_and_mask,
    sum_losses,
)

IGNORE_INDEX = 255


def nll_sum(probs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Summed per-pixel ``-log p(true class)`` over labelled pixels (= ``F.nll_loss(probs.log(), mask,
    ignore_index=255, reduction="sum")``), taking the log of the true class's probability only (1/K of the work)."""
    valid = mask != IGNORE_INDEX
    p_true = probs.gather(1, torch.where(valid, mask, 0)[:, None])[:, 0]
    return -(p_true.clamp_min(1e-12).log() * valid).sum()


def predict_probs(model: nn.Module, x: torch.Tensor, tta: str = "none") -> torch.Tensor:
    """Per-pixel class probabilities ``[B, K, H, W]``, averaged with the mirrored view for ``tta="flip"``."""
    probs = F.softmax(model(x).float(), dim=1)
    if tta == "flip":
        probs = (probs + F.softmax(model(x.flip(-1)).float(), dim=1).flip(-1)) / 2
    return probs


class SegmentationTask(DenseTask):
    """Image -> a class per pixel (background 0). Data: a DenseDataset with masks (Fashion-MNIST
    scenes, a VOC-style folder); models: the registry's segmentation models (FCN-32s/16s/8s)."""

    name = "segmentation"
    score = "mean_iu"
    score_label = "mean IU"
    train_score = "pixel_acc"
    loss_label = "per-pixel cross-entropy"
    tta_modes = ("none", "flip")
    command = "cnnlab segment"

    annotation = ("has_masks", "segmentation masks", "fashion-scenes, voc:DIR or another dataset with per-pixel masks")

    def build_model(self, cfg, spec: DataSpec) -> tuple[nn.Module, str, dict]:
        from cnnlab.models import get_model_info, list_models

        info = get_model_info(cfg.model)
        if getattr(info, "task", "classification") != "segmentation":
            options = ", ".join(list_models(task="segmentation"))
            raise ConfigError(f"model {cfg.model} is a classifier; segmentation needs one of {options}")
        return super().build_model(cfg, spec)

    def expected_output(self, spec: DataSpec, batch: int) -> tuple[int, ...]:
        return (batch, spec.num_classes, spec.img_size, spec.img_size)

    def criterion(self, cfg, weighted: bool):
        return nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX, label_smoothing=cfg.label_smoothing,
                                   reduction="none" if weighted else "mean")

    def step(self, model: nn.Module, batch: Any, ctx: StepContext) -> StepOutput:
        x, target = batch
        x, mask = resize_input_and_mask(x, target["mask"], ctx.spec.img_size)
        x = add_input_noise(x, ctx.cfg.input_noise)
        logits = model(x)
        loss = ctx.criterion(logits, mask)
        if ctx.sample_weights is not None:  # per-image weights: mean over each image's labelled pixels
            valid = (mask != IGNORE_INDEX).flatten(1).sum(1).clamp_min(1)
            per_image = loss.flatten(1).sum(1) / valid
            loss = (per_image * ctx.sample_weights[target["index"].to(ctx.sample_weights.device)]).mean()
        loss, parts = sum_losses(loss)
        valid = mask != IGNORE_INDEX
        correct = ((label_map(logits.detach()) == mask) & valid).sum().float()
        return StepOutput(loss=loss, n=x.shape[0], score_sum=correct, score_count=float(valid.sum()),
                          parts=parts or None)

    @torch.inference_mode()
    def evaluate(self, model: nn.Module, data: Any, spec: DataSpec, *, batch_size: int, device: torch.device,
                 amp: str, channels_last: bool, tta: str = "none") -> dict[str, Any]:
        """FCN §5 metrics over the whole split; sharded across processes under DDP like classification."""
        from cnnlab.data.dense import build_dense_loader
        from cnnlab.segmentation.metrics import SegmentationMeter
        from cnnlab.train.distributed import shard_for_eval
        from cnnlab.train.task import autocast_for

        data, sharded = shard_for_eval(data)
        meter = SegmentationMeter(spec.num_classes, ignore_index=IGNORE_INDEX, device=device, sync=sharded)
        loader = build_dense_loader(data, batch_size=batch_size, shuffle=False, device=device,
                                    channels_last=channels_last)
        was_training = model.training
        model.eval()
        try:
            for x, target in loader:
                mask = target["mask"]
                x, _ = resize_input_and_mask(x, None, spec.img_size)
                with autocast_for(torch.device(device), amp):
                    probs = predict_probs(model, x, tta)
                if probs.shape[-2:] != mask.shape[-2:]:  # score at the data's resolution
                    probs = F.interpolate(probs, size=mask.shape[-2:], mode="bilinear", align_corners=False)
                loss_sum = nll_sum(probs, mask)
                meter.update(probs, mask, loss_sum)
        finally:
            model.train(was_training)
        return meter.compute()

    pictures = "predictions.png"

    def final_line(self, f: dict[str, Any]) -> str:
        tta = f" with {f['tta']} TTA (without: {f['mean_iu_no_tta']:.4f})" if f.get("tta") else ""
        return (f"final {f['split']} mean IU {f['mean_iu']:.4f}{tta}, pixel acc {100 * f['pixel_acc']:.2f}%, "
                f"mean acc {100 * f['mean_acc']:.2f}%, f.w. IU {f['fw_iu']:.4f}, loss {f['loss']:.4f}")

    def report_lines(self, r: dict[str, Any]) -> list[str]:
        width = max(len(c) for c in r["classes"])
        return [f"{r['checkpoint']} on {r['data']}/{r['split']} ({r['images']} images, {r['n']} labelled pixels, "
                f"TTA {r['tta']}):",
                f"  pixel acc {100 * r['pixel_acc']:.2f}%  mean acc {100 * r['mean_acc']:.2f}%  "
                f"mean IU {r['mean_iu']:.4f}  f.w. IU {r['fw_iu']:.4f}  loss {r['loss']:.4f}",
                *(f"  {name:<{width}}  IU {'   n/a' if iou is None else f'{iou:.4f}'}"
                  for name, iou in zip(r["classes"], r["iou_per_class"]))]

    def columns(self, prefix: str, metrics: dict[str, Any]) -> dict[str, Any]:
        keys = ("loss", "pixel_acc", "mean_acc", "mean_iu", "fw_iu", "boundary_f1")
        return {f"{prefix}_{k}": metrics.get(k) for k in keys}

    def plots(self, run_dir: Path, final: dict[str, Any], *, model: nn.Module, data: Any, spec: DataSpec,
              title: str) -> None:
        """Colour overlays of the first test images (image | ground truth | prediction)."""
        import matplotlib.pyplot as plt

        from cnnlab.data import normalize_uint8
        from cnnlab.segmentation.render import render_predictions

        n = min(6, len(data))
        images = data.images[:n]
        x = normalize_uint8(images, spec.mean, spec.std)
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        with torch.inference_mode():
            xr, _ = resize_input_and_mask(x.to(device), None, spec.img_size)
            pred = label_map(predict_probs(model, xr)).cpu()
        model.train(was_training)
        if pred.shape[-2:] != images.shape[-2:]:
            pred = F.interpolate(pred[:, None].float(), size=images.shape[-2:], mode="nearest")[:, 0].long()
        fig = render_predictions(images, data.masks[:n], pred, spec.classes, path=run_dir / "predictions.png")
        plt.close(fig)


register_task("segmentation", SegmentationTask)
