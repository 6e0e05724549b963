"""The Fast R-CNN head (Girshick, Fast R-CNN, ICCV 2015, §2): RoI pooling, two FC layers, classifier + box
regressor, trained jointly with the multi-task loss.

* RoI pooling (§2.1): each proposal's window on the feature map max-pooled into a fixed ``7 x 7`` grid
  (``torchvision.ops.roi_pool``; ``pool="roi_align"`` uses Mask R-CNN's bilinear RoIAlign instead).
* Mini-batches (§2.3): per image ``batch_size_per_image`` RoIs, 25% foreground (IoU >= 0.5 with a ground-truth
  box), the rest background (IoU in ``[bg_iou_low, 0.5)``; the paper's 0.1, torchvision's 0.0 by default so
  that the classifier also sees empty windows); the ground-truth boxes join the proposals.
* Loss (§2.3, eq. 1): ``L = L_cls(p, u) + [u >= 1] L_loc(t^u, v)``, cross-entropy plus smooth L1 (eq. 3,
  ``beta = 1``) on the true class's deltas, box coding weights (10, 10, 5, 5).
* Detection (§2.4): softmax scores, class-specific boxes, clip, drop background and scores <= 0.05, NMS per class
  (``batched_nms``) at 0.3 -- the released test setting of Fast and Faster R-CNN (``TEST.NMS = 0.3`` in
  py-faster-rcnn, as R-CNN's 0.3); torchvision's ``box_nms_thresh`` default is 0.5 -- at most 100 detections
  per image. On 128x128 scenes 0.5 leaves a second, shifted box on a partly covered item: the same weights
  scored mAP@0.5 0.739 at 0.5 and 0.867 at 0.3 (600 test scenes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms, box_iou, clip_boxes_to_image, remove_small_boxes, roi_align, roi_pool

from cnnlab.detection.boxes import BETWEEN, ROI_WEIGHTS, decode, encode, match, sample_balanced

POOLS = ("roi_pool", "roi_align")


def pool_rois(features: torch.Tensor, rois: list[torch.Tensor], output_size: int, stride: int,
              pool: str = "roi_pool") -> torch.Tensor:
    """``[sum n_i, C, output_size, output_size]``: each image's boxes (input pixels) pooled from its map."""
    if pool == "roi_align":
        return roi_align(features, rois, output_size, 1.0 / stride, sampling_ratio=2, aligned=True)
    return roi_pool(features, rois, output_size, 1.0 / stride)


class BoxHead(nn.Module):
    """Flatten -> fc6 -> ReLU -> fc7 -> ReLU (the paper's two FC layers, narrower), then ``cls_score`` (K)
    and ``bbox_pred`` (4K, class-specific). PyTorch's default Linear initialisation, as torchvision's
    ``FastRCNNPredictor``: the paper's N(0, 0.01^2) / N(0, 0.001^2) (§2.2, new layers on a pretrained VGG) gave
    mAP@0.5 0.30 instead of 0.36 after 3 epochs from scratch on 2,000 scenes (bench_detect.py --quick, one seed)."""

    def __init__(self, in_features: int, num_classes: int, representation: int = 256) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_features, representation)
        self.fc7 = nn.Linear(representation, representation)
        self.cls_score = nn.Linear(representation, num_classes)
        self.bbox_pred = nn.Linear(representation, 4 * num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.fc7(F.relu(self.fc6(x.flatten(1)))))
        return self.cls_score(x), self.bbox_pred(x)


def postprocess(class_logits: torch.Tensor, box_deltas: torch.Tensor, proposals: list[torch.Tensor],
                image_size: tuple[int, int], score_thresh: float = 0.05, nms_thresh: float = 0.3,
                detections_per_img: int = 100) -> list[dict[str, torch.Tensor]]:
    """Fast R-CNN §2.4 detections per image (torchvision's ``RoIHeads.postprocess_detections``)."""
    num_classes = class_logits.shape[-1]
    counts = [len(p) for p in proposals]
    boxes_all = decode(box_deltas, torch.cat(proposals), ROI_WEIGHTS).view(-1, num_classes, 4)
    scores_all = F.softmax(class_logits, -1)
    out = []
    for boxes, scores in zip(boxes_all.split(counts), scores_all.split(counts)):
        boxes = clip_boxes_to_image(boxes, image_size)[:, 1:].reshape(-1, 4)
        labels = torch.arange(num_classes, device=scores.device).expand_as(scores)[:, 1:].reshape(-1)
        scores = scores[:, 1:].reshape(-1)
        keep = torch.where(scores > score_thresh)[0]
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = remove_small_boxes(boxes, 1e-2)
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = batched_nms(boxes, scores, labels, nms_thresh)[:detections_per_img]
        out.append({"boxes": boxes[keep], "labels": labels[keep], "scores": scores[keep]})
    return out


class RoIHeads(nn.Module):
    """RoI pooling + :class:`BoxHead`; ``forward(features, proposals, image_size, targets)`` -> (detections,
    losses ``{"roi_cls", "roi_box"}`` in training)."""

    def __init__(self, in_channels: int, stride: int, num_classes: int, *, pool: str = "roi_pool",
                 output_size: int = 7, representation: int = 256, fg_iou: float = 0.5, bg_iou_low: float = 0.0,
                 batch_size_per_image: int = 64, positive_fraction: float = 0.25, score_thresh: float = 0.05,
                 nms_thresh: float = 0.3, detections_per_img: int = 100) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool={pool!r} is not one of {', '.join(POOLS)}")
        self.pool, self.output_size, self.stride, self.num_classes = pool, output_size, stride, num_classes
        self.box_head = BoxHead(in_channels * output_size**2, num_classes, representation)
        self.fg_iou, self.bg_iou_low = fg_iou, bg_iou_low
        self.batch_size_per_image, self.positive_fraction = batch_size_per_image, positive_fraction
        self.score_thresh, self.nms_thresh, self.detections_per_img = score_thresh, nms_thresh, detections_per_img
        self.last_accuracy: tuple[torch.Tensor, int] | None = None  # (correct, sampled RoIs) of the last loss

    def sample(self, proposals: torch.Tensor, target: dict, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One image's training RoIs (proposals + gt boxes, §2.3) -> (rois, class labels, regression targets)."""
        gt_boxes, gt_labels = target["boxes"], target["labels"]
        rois = torch.cat([proposals, gt_boxes])
        if gt_boxes.numel() == 0:
            labels = torch.zeros(len(rois), dtype=torch.int64, device=rois.device)
            matched = torch.zeros_like(rois)
        else:
            matches = match(box_iou(gt_boxes, rois), self.fg_iou, self.bg_iou_low, keep_best=False)
            labels = gt_labels[matches.clamp(min=0)].clone()
            labels[matches == BETWEEN] = 0
            labels[(matches < 0) & (matches != BETWEEN)] = -1  # IoU below bg_iou_low: not sampled
            matched = gt_boxes[matches.clamp(min=0)]
        pos, neg = sample_balanced(labels, self.batch_size_per_image, self.positive_fraction, generator)
        keep = torch.cat([pos, neg])
        labels = labels[keep].clamp(min=0)
        return rois[keep], labels, encode(matched[keep], rois[keep], ROI_WEIGHTS)

    def forward(self, features: torch.Tensor, proposals: list[torch.Tensor], image_size: tuple[int, int],
                targets: list[dict] | None = None, generator: torch.Generator | None = None
                ) -> tuple[list[dict], dict[str, torch.Tensor]]:
        """With ``targets``: the losses on sampled RoIs (no detections); without: the detections."""
        if targets is not None:
            samples = [self.sample(p.detach(), t, generator) for p, t in zip(proposals, targets)]
            rois = [s[0] for s in samples]
            labels = torch.cat([s[1] for s in samples])
            reg_targets = torch.cat([s[2] for s in samples])
            logits, deltas = self.box_head(pool_rois(features, rois, self.output_size, self.stride, self.pool))
            self.last_accuracy = ((logits.detach().argmax(1) == labels).sum().float(), len(labels))
            return [], self.loss(logits, deltas, labels, reg_targets)
        logits, deltas = self.box_head(pool_rois(features, proposals, self.output_size, self.stride, self.pool))
        return postprocess(logits, deltas, proposals, image_size, self.score_thresh, self.nms_thresh,
                           self.detections_per_img), {}

    @staticmethod
    def loss(logits: torch.Tensor, deltas: torch.Tensor, labels: torch.Tensor, reg_targets: torch.Tensor
             ) -> dict[str, torch.Tensor]:
        """Fast R-CNN eq. 1: cross-entropy + smooth L1 (eq. 3) of the true class's deltas on foreground RoIs,
        divided by the number of sampled RoIs."""
        fg = torch.where(labels > 0)[0]
        per_class = deltas.view(len(deltas), -1, 4)[fg, labels[fg]]
        roi_box = F.smooth_l1_loss(per_class, reg_targets[fg], beta=1.0, reduction="sum") / max(1, labels.numel())
        return {"roi_cls": F.cross_entropy(logits, labels), "roi_box": roi_box}
