"""Detection metrics through torchmetrics' ``MeanAveragePrecision`` (COCO evaluation, ``faster_coco_eval``
backend): PASCAL VOC's mAP@0.5 (Everingham et al. 2010: a detection is correct at IoU >= 0.5 with an unclaimed
ground-truth box of its class; AP = area under the 101-point interpolated precision-recall curve, COCO's rule),
COCO's mAP@[.5:.95] (the mean over IoU 0.50, 0.55, ..., 0.95), per-class AP and the recall at 100 detections
per image. A class without ground-truth boxes in the split has no AP (``None``) and is left out of the means.
"""

from __future__ import annotations

from typing import Any

import torch


def _cpu(d: dict[str, torch.Tensor], keys: tuple[str, ...]) -> dict[str, torch.Tensor]:
    return {k: d[k].detach().to("cpu", torch.float32 if k in ("boxes", "scores") else torch.int64) for k in keys}


def _value(v: torch.Tensor) -> float | None:
    v = float(v)
    return None if v < 0 else v  # torchmetrics' -1: no ground truth


class DetectionMeter:
    """Accumulates predictions and targets over a split; ``compute()`` -> the metrics dict (all floats)."""

    def __init__(self, classes: list[str]) -> None:
        from torchmetrics.detection import MeanAveragePrecision

        self.classes = list(classes)
        self.metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="faster_coco_eval",
                                           class_metrics=True, extended_summary=True)
        self.n_images = 0

    def update(self, preds: list[dict], targets: list[dict]) -> None:
        self.metric.update([_cpu(p, ("boxes", "scores", "labels")) for p in preds],
                           [_cpu(t, ("boxes", "labels")) for t in targets])
        self.n_images += len(preds)

    def compute(self) -> dict[str, Any]:
        r = self.metric.compute()
        present = r["classes"].tolist() if r["classes"].dim() else [int(r["classes"])]
        # precision [IoU thresholds, 101 recall points, classes, area ranges, max dets]: IoU 0.5, all areas, 100
        prec50 = r["precision"][0, :, :, 0, -1]
        ap50, ap = {}, {}
        for i, c in enumerate(present):
            p = prec50[:, i]
            name = self.classes[c] if 0 <= c < len(self.classes) else str(c)
            ap50[name] = float(p.clamp(min=0).mean()) if (p >= 0).any() else None
            per_class = r["map_per_class"].reshape(-1)
            ap[name] = _value(per_class[i]) if i < len(per_class) else None
        recall = torch.linspace(0, 1, 101)
        curves = {self.classes[c] if 0 <= c < len(self.classes) else str(c): prec50[:, i].clamp(min=0).tolist()
                  for i, c in enumerate(present) if (prec50[:, i] >= 0).any()}
        return {"map_50": _value(r["map_50"]) or 0.0, "map": _value(r["map"]) or 0.0,
                "map_75": _value(r["map_75"]) or 0.0, "recall_100": _value(r["mar_100"]) or 0.0,
                "ap50_per_class": ap50, "ap_per_class": ap, "n_images": self.n_images,
                "pr_curves": {"recall": recall.tolist(), "precision": curves}}


def detection_scores(preds: list[dict], targets: list[dict], classes: list[str]) -> dict[str, Any]:
    """mAP@0.5, mAP@[.5:.95], mAP@0.75, recall@100 and per-class AP of one set of predictions."""
    meter = DetectionMeter(classes)
    meter.update(preds, targets)
    return meter.compute()


def speed_fields(seconds: float, n_images: int, batch_size: int) -> dict[str, float]:
    """``ms_per_image`` and ``img_per_s`` of ``n_images`` forward passes that took ``seconds`` in batches of
    ``batch_size`` -- one definition for every detector (the staged R-CNN/SPPNet too)."""
    seconds, n = max(seconds, 1e-9), max(n_images, 1)
    return {"ms_per_image": 1000 * seconds / n, "img_per_s": n / seconds, "speed_batch": batch_size}
