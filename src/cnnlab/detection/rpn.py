"""The Region Proposal Network (Ren et al., Faster R-CNN, NeurIPS 2015, §3.1).

A small network slides over the last shared feature map: a 3x3 convolution (+ ReLU), then two sibling 1x1
convolutions giving, for each of the ``k`` anchors at each position, **2 objectness scores** (object / not
object, a two-class softmax, §3.1) and **4 box deltas** (the box coding of :mod:`cnnlab.detection.boxes`).

Training (§3.1.2): anchors with IoU >= 0.7 to a ground-truth box, or the best anchor of a box, are positive,
IoU < 0.3 negative, the rest ignored; each image samples 256 anchors with up to half positives; the loss is
cross-entropy over the sampled anchors plus smooth L1 on the positives' deltas (``beta = 1/9``, Detectron's).
Proposals (§3.3): decode every anchor, clip to the image, drop tiny boxes, keep the ``pre_nms_top_n`` best
scores, NMS at IoU 0.7, keep ``post_nms_top_n``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_iou, clip_boxes_to_image, nms, remove_small_boxes

from cnnlab.detection.anchors import RATIOS, SIZES, AnchorGrid
from cnnlab.detection.boxes import BETWEEN, RPN_WEIGHTS, decode, encode, match, sample_balanced


class RPNHead(nn.Module):
    """3x3 conv + ReLU, then ``cls_logits`` (``2k`` channels: background/object per anchor) and ``bbox_pred``
    (``4k``); weights ~ N(0, 0.01^2), biases 0 (§3.3)."""

    def __init__(self, in_channels: int, num_anchors: int) -> None:
        super().__init__()
        self.num_anchors = num_anchors
        self.conv = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.cls_logits = nn.Conv2d(in_channels, 2 * num_anchors, 1)
        self.bbox_pred = nn.Conv2d(in_channels, 4 * num_anchors, 1)
        for layer in (self.conv, self.cls_logits, self.bbox_pred):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, C, h, w]`` -> logits ``[B, h*w*k, 2]`` and deltas ``[B, h*w*k, 4]`` in the anchors' order."""
        t = self.relu(self.conv(x))
        b, _, h, w = t.shape
        logits = self.cls_logits(t).view(b, self.num_anchors, 2, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, 2)
        deltas = self.bbox_pred(t).view(b, self.num_anchors, 4, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, 4)
        return logits, deltas


def objectness(logits: torch.Tensor) -> torch.Tensor:
    """P(object) of the two-class softmax = ``sigmoid(l_obj - l_bg)``."""
    return torch.sigmoid(logits[..., 1] - logits[..., 0])


def select_proposals(boxes: torch.Tensor, scores: torch.Tensor, image_size: tuple[int, int], pre_nms_top_n: int,
                     post_nms_top_n: int, nms_thresh: float, min_size: float = 1e-3
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """One image's proposals: top ``pre_nms_top_n`` scores, clip, drop boxes under ``min_size``, NMS, top
    ``post_nms_top_n`` (torchvision's ``RegionProposalNetwork.filter_proposals`` for one feature map)."""
    top = scores.topk(min(pre_nms_top_n, scores.numel())).indices
    boxes, scores = clip_boxes_to_image(boxes[top], image_size), scores[top]
    keep = remove_small_boxes(boxes, min_size)
    boxes, scores = boxes[keep], scores[keep]
    keep = nms(boxes, scores, nms_thresh)[:post_nms_top_n]
    return boxes[keep], scores[keep]


class RegionProposalNetwork(nn.Module):
    """Anchors + :class:`RPNHead` + proposal selection; ``forward(features, image_size, targets)`` ->
    (proposals: list of ``[n_i, 4]``, losses ``{"rpn_cls", "rpn_box"}`` in training)."""

    def __init__(self, in_channels: int, sizes=SIZES, ratios=RATIOS, *, pre_nms_top_n=(600, 300),
                 post_nms_top_n=(150, 100), nms_thresh: float = 0.7, fg_iou: float = 0.7, bg_iou: float = 0.3,
                 batch_size_per_image: int = 256, positive_fraction: float = 0.5) -> None:
        super().__init__()
        self.anchors = AnchorGrid(sizes, ratios)
        self.head = RPNHead(in_channels, self.anchors.num_anchors)
        self.pre_nms_top_n, self.post_nms_top_n = tuple(pre_nms_top_n), tuple(post_nms_top_n)  # (train, test)
        self.nms_thresh, self.fg_iou, self.bg_iou = nms_thresh, fg_iou, bg_iou
        self.batch_size_per_image, self.positive_fraction = batch_size_per_image, positive_fraction

    def forward(self, features: torch.Tensor, image_size: tuple[int, int], targets: list[dict] | None = None,
                generator: torch.Generator | None = None) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """Proposals per image; the losses too when ``targets`` are given (anchors sampled with ``generator``)."""
        logits, deltas = self.head(features)
        anchors = self.anchors(features.shape[-2:], image_size, deltas.dtype, deltas.device)
        mode = 0 if self.training else 1
        scores = objectness(logits.detach())
        boxes = decode(deltas.detach().reshape(-1, 4), anchors.repeat(len(deltas), 1), RPN_WEIGHTS)
        boxes = boxes.view(len(deltas), -1, 4)
        proposals = [select_proposals(b, s, image_size, self.pre_nms_top_n[mode], self.post_nms_top_n[mode],
                                      self.nms_thresh)[0] for b, s in zip(boxes, scores)]
        losses = {}
        if targets is not None:
            losses = self.loss(logits, deltas, anchors, targets, generator)
        return proposals, losses

    def label_anchors(self, anchors: torch.Tensor, gt_boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per anchor: label 1 (object), 0 (background) or -1 (ignored), and the matched gt box (§3.1.2)."""
        if gt_boxes.numel() == 0:
            return torch.zeros(len(anchors), device=anchors.device), torch.zeros_like(anchors)
        matches = match(box_iou(gt_boxes, anchors), self.fg_iou, self.bg_iou, keep_best=True)
        labels = (matches >= 0).to(anchors.dtype)
        labels[matches == BETWEEN] = -1
        return labels, gt_boxes[matches.clamp(min=0)]

    def loss(self, logits: torch.Tensor, deltas: torch.Tensor, anchors: torch.Tensor, targets: list[dict],
             generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Faster R-CNN eq. 1 on 256 sampled anchors per image: ``L_cls`` (2-way cross-entropy) + ``L_reg``
        (smooth L1 on the positives), both divided by the number of sampled anchors."""
        pos_all, neg_all, gt_deltas = [], [], []
        for i, t in enumerate(targets):
            labels, matched = self.label_anchors(anchors, t["boxes"])
            pos, neg = sample_balanced(labels, self.batch_size_per_image, self.positive_fraction, generator)
            offset = i * len(anchors)
            pos_all.append(pos + offset)
            neg_all.append(neg + offset)
            gt_deltas.append(encode(matched[pos], anchors[pos], RPN_WEIGHTS))
        pos, neg = torch.cat(pos_all), torch.cat(neg_all)
        sampled = torch.cat([pos, neg])
        target = torch.cat([torch.ones_like(pos), torch.zeros_like(neg)])
        rpn_cls = F.cross_entropy(logits.reshape(-1, 2)[sampled], target)
        rpn_box = F.smooth_l1_loss(deltas.reshape(-1, 4)[pos], torch.cat(gt_deltas), beta=1 / 9,
                                   reduction="sum") / max(1, sampled.numel())
        return {"rpn_cls": rpn_cls, "rpn_box": rpn_box}
