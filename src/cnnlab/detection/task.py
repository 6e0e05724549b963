"""Object detection as a :class:`~cnnlab.train.task.Task`: the detector's named losses, COCO/VOC mAP.

Step: ``model(images, targets)`` in training mode returns a dict of named losses (Faster R-CNN: ``rpn_cls``,
``rpn_box``, ``roi_cls``, ``roi_box``; the contract of :mod:`cnnlab.detection`); their sum is back-propagated
and each part is logged. The running training score is the RoI head's accuracy on its sampled RoIs
(``model.roi_heads.last_accuracy`` or ``model.last_accuracy``: ``(correct, count)``; 0 without). Evaluation:
the detections of ``model.eval()`` scored by :class:`~cnnlab.detection.metrics.DetectionMeter` (mAP@0.5 picks the
best epoch; mAP@[.5:.95], per-class AP, recall@100), and the validation loss with a seeded sampler
(``model.losses(images, targets, generator)``) so that evaluating never moves the training random state.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.errors import ConfigError, DataError
from cnnlab.train.task import (
    DataSpec,
    DenseTask,
    StepContext,
    StepOutput,
    autocast_for,
    register_task,
    resize_input_and_boxes,
    sum_losses,
)

EVAL_LOSS_SEED = 0


def tell_normalization(model: nn.Module, mean, std) -> None:
    """A proposer that works on pixels (selective search) learns how the detector's inputs are normalised."""
    proposer = getattr(model, "proposer", None)
    if hasattr(proposer, "set_normalization"):
        proposer.set_normalization(mean, std)


def to_targets(target: dict) -> list[dict[str, torch.Tensor]]:
    """The DenseLoader's ``{"boxes": [...], "labels": [...]}`` -> the detectors' list of per-image dicts."""
    return [{"boxes": b, "labels": lb} for b, lb in zip(target["boxes"], target["labels"])]


def unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)  # DistributedDataParallel


class DetectionTask(DenseTask):
    """Image -> boxes with classes and scores. Data: a DenseDataset with boxes (``fashion-scenes``,
    ``voc:DIR``, ``coco:FILE.json``); models: the registry's detection models."""

    name = "detection"
    score = "map_50"
    score_label = "mAP@0.5"
    train_score = "roi_acc"
    loss_label = "detection loss (sum of parts)"
    command = "cnnlab detect"

    annotation = ("has_boxes", "boxes", "fashion-scenes, voc:DIR, coco:FILE.json or another dataset with box "
                  "annotations")

    def load_data(self, cfg, train: Any, val: Any, test: Any) -> tuple[Any, Any, Any]:
        train, val, test = super().load_data(cfg, train, val, test)
        if train.num_boxes == 0:
            raise DataError(f"{cfg.data}: the training images hold no boxes at all; a detector cannot learn")
        return train, val, test

    def build_model(self, cfg, spec: DataSpec) -> tuple[nn.Module, str, dict]:
        from cnnlab.models import get_model_info, list_models

        info = get_model_info(cfg.model)
        if getattr(info, "task", "classification") != "detection":
            options = ", ".join(list_models(task="detection"))
            raise ConfigError(f"model {cfg.model} is a {info.task} model; detection needs one of {options}")
        model, name, meta = super().build_model(cfg, spec)
        tell_normalization(model, spec.mean, spec.std)
        return model, name, meta

    def model_from_checkpoint(self, ckpt: Any, use_ema: bool = True) -> nn.Module:
        """R-CNN/SPPNet runs (SVMs, box regressors) load through :func:`~cnnlab.detection.rcnn.load_rcnn`."""
        if ckpt.meta.get("method") in ("rcnn", "sppnet"):
            from cnnlab.detection.rcnn import load_rcnn

            return load_rcnn(ckpt.path.parent).eval()
        model = ckpt.build_model(use_ema=use_ema)
        tell_normalization(model, ckpt.meta["mean"], ckpt.meta["std"])
        return model

    def check_eval_data(self, data: Any, name: str, split: str) -> None:
        if not getattr(data, "has_boxes", False):
            raise ConfigError(f"{name} ({split}) has no boxes to score detections against")

    def check_output(self, out: Any, spec: DataSpec, name: str) -> None:
        if not (isinstance(out, list) and len(out) == 2 and all({"boxes", "labels", "scores"} <= set(o) for o in out)):
            raise ConfigError(f"model {name} does not return detections (a list of boxes/labels/scores dicts)")

    def criterion(self, cfg, weighted: bool):
        if weighted:
            raise ConfigError("per-sample weights (boosting) are not supported for detection")
        return sum_losses  # the detector computes its own losses

    def step(self, model: nn.Module, batch: Any, ctx: StepContext) -> StepOutput:
        x, target = batch
        x, boxes = resize_input_and_boxes(x, target["boxes"], ctx.spec.img_size)
        targets = [{"boxes": b, "labels": lb} for b, lb in zip(boxes, target["labels"])]
        loss, parts = sum_losses(model(x, targets))
        net = unwrap(model)  # a two-stage model keeps its RoI head's accuracy; another may keep its own
        stats = getattr(getattr(net, "roi_heads", net), "last_accuracy", None)
        correct, count = stats if stats is not None else (torch.zeros((), device=x.device), 1.0)
        return StepOutput(loss=loss, n=x.shape[0], score_sum=correct, score_count=float(count), parts=parts or None)

    @torch.inference_mode()
    def evaluate(self, model: nn.Module, data: Any, spec: DataSpec, *, batch_size: int, device: torch.device,
                 amp: str, channels_last: bool, tta: str = "none") -> dict[str, Any]:
        """mAP over the whole split (at the data's pixel size), the mean validation loss per batch, and the
        detector's speed: ``ms_per_image`` / ``img_per_s`` of the forward passes alone (batch ``batch_size``,
        the run's threads; loss and metric bookkeeping excluded) -- what the lab's detection-speed claim reads."""
        from cnnlab.data.dense import build_dense_loader
        from cnnlab.detection.metrics import DetectionMeter, speed_fields
        from cnnlab.train.distributed import shard_for_eval

        data, dist_on = shard_for_eval(data)  # each process scores its shard; torchmetrics gathers in compute()
        meter = DetectionMeter(spec.classes)
        loader = build_dense_loader(data, batch_size=batch_size, shuffle=False, device=device,
                                    channels_last=channels_last)
        generator = torch.Generator(device=device).manual_seed(EVAL_LOSS_SEED)
        was_training = model.training
        model.eval()
        loss_sum, n, forward_s = 0.0, 0, 0.0
        try:
            for x, target in loader:
                h, w = x.shape[-2:]
                xr, boxes = resize_input_and_boxes(x, target["boxes"], spec.img_size)
                with autocast_for(torch.device(device), amp):
                    tick = time.perf_counter()
                    preds = model(xr)
                    if xr.is_cuda:  # kernels run asynchronously: wait for them before reading the clock
                        torch.cuda.synchronize(xr.device)
                    forward_s += time.perf_counter() - tick
                    if hasattr(model, "losses"):
                        losses = model.losses(xr, [{"boxes": b, "labels": lb} for b, lb in
                                                   zip(boxes, target["labels"])], generator=generator)
                        loss_sum += float(sum(losses.values())) * len(x)
                n += len(x)
                if (h, w) != (spec.img_size, spec.img_size):  # score at the data's resolution
                    scale = torch.tensor([w / spec.img_size, h / spec.img_size] * 2, device=x.device)
                    preds = [{**p, "boxes": p["boxes"] * scale} for p in preds]
                meter.update(preds, to_targets(target))
        finally:
            model.train(was_training)
        metrics = meter.compute()
        if dist_on:
            totals = torch.tensor([loss_sum, float(n)], dtype=torch.float64, device=device)
            torch.distributed.all_reduce(totals)
            loss_sum, n = float(totals[0]), int(totals[1])
        metrics["n_images"] = n
        metrics.update(speed_fields(forward_s, n, batch_size))
        metrics["loss"] = loss_sum / max(1, n) if hasattr(model, "losses") else float("nan")
        return metrics

    def columns(self, prefix: str, metrics: dict[str, Any]) -> dict[str, Any]:
        return {f"{prefix}_{k}": metrics.get(k) for k in ("loss", "map_50", "map", "recall_100")}

    pictures = "pr_curves.png, detections.png"

    def final_line(self, f: dict[str, Any]) -> str:
        return (f"final {f['split']} mAP@0.5 {f['map_50']:.4f}, mAP@[.5:.95] {f['map']:.4f}, "
                f"recall@100 {f['recall_100']:.4f}, loss {f['loss']:.4f}")

    def report_lines(self, r: dict[str, Any]) -> list[str]:
        width = max(len(c) for c in r["classes"])
        lines = [f"{r['checkpoint']} on {r['data']}/{r['split']} ({r['n_images']} images):",
                 f"  mAP@0.5 {r['map_50']:.4f}  mAP@[.5:.95] {r['map']:.4f}  mAP@0.75 {r['map_75']:.4f}  "
                 f"recall@100 {r['recall_100']:.4f}  loss {r['loss']:.4f}"]
        for name in r["classes"][1:]:
            ap50, ap = r["ap50_per_class"].get(name), r["ap_per_class"].get(name)
            cells = "n/a (no boxes)" if ap50 is None else f"AP@0.5 {ap50:.4f}  AP@[.5:.95] {ap or 0:.4f}"
            lines.append(f"  {name:<{width}}  {cells}")
        return lines

    def plots(self, run_dir: Path, final: dict[str, Any], *, model: nn.Module, data: Any, spec: DataSpec,
              title: str) -> None:
        """PR curves per class (``pr_curves.png``) and detections drawn on the first images (``detections.png``)."""
        from cnnlab.detection.render import plot_pr_curves, render_detections

        if final.get("pr_curves"):
            plot_pr_curves(run_dir / "pr_curves.png", final["pr_curves"], f"{title}: mAP@0.5 {final['map_50']:.3f}")
        render_detections(run_dir / "detections.png", model, data.subset(torch.arange(min(6, len(data)))), spec)


register_task("detection", DetectionTask)
