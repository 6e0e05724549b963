"""Fast and Faster R-CNN as one module, shaped like torchvision's ``GeneralizedRCNN`` (backbone -> proposals ->
RoI heads) without its transform: images arrive normalised and at a fixed size (no 800-px resize).

* Faster R-CNN (Ren et al. 2015): proposals from the :class:`~cnnlab.detection.rpn.RegionProposalNetwork` on
  the shared feature map, trained end to end with the four losses summed (the paper's "approximate joint
  training", §3.2: proposals are treated as constants, no gradient through their coordinates).
* Fast R-CNN (Girshick 2015): proposals from outside -- ``model(images, targets, proposals=[...])`` per image,
  or the model's ``proposer`` (any ``images -> list of [n_i, 4]`` callable: selective search, precomputed
  boxes). The default proposer is an exhaustive sliding-window set (the 9 anchor shapes centred in every cell
  of a stride-16 grid: 576 boxes per 128x128 image) -- a stand-in with selective search's role.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from cnnlab.detection.anchors import RATIOS, SIZES, anchor_grid
from cnnlab.detection.backbones import FeatureBackbone
from cnnlab.detection.roi_heads import RoIHeads
from cnnlab.detection.rpn import RegionProposalNetwork

Proposer = Callable[[torch.Tensor], list[torch.Tensor]]


class SlidingWindowProposals:
    """Every anchor of a stride-``stride`` grid as a proposal, clipped to the image (the exhaustive baseline)."""

    def __init__(self, stride: int = 16, sizes=SIZES, ratios=RATIOS) -> None:
        self.stride, self.sizes, self.ratios = stride, tuple(sizes), tuple(ratios)

    def __call__(self, images: torch.Tensor) -> list[torch.Tensor]:
        from torchvision.ops import clip_boxes_to_image

        h, w = images.shape[-2:]
        grid = anchor_grid((h // self.stride, w // self.stride), (h, w), self.sizes, self.ratios,
                           device=images.device)
        boxes = clip_boxes_to_image(grid + self.stride / 2, (h, w))  # centred in each cell
        return [boxes] * len(images)


class TwoStageDetector(nn.Module):
    """``backbone`` (a stride-s feature map) -> proposals (``rpn`` or given) -> ``roi_heads``.

    ``forward(images, targets=None, proposals=None)``: training -> dict of named losses; eval -> list of
    ``{"boxes", "labels", "scores"}`` per image (the contract of :mod:`cnnlab.detection`).
    """

    export_unsupported = ("proposal selection and per-class NMS keep a data-dependent number of boxes per image "
                          "(no fixed-shape graph); use `cnnlab detect predict`, or export YOLO (one pass)")

    def __init__(self, backbone: FeatureBackbone, roi_heads: RoIHeads, num_classes: int,
                 rpn: RegionProposalNetwork | None = None, proposer: Proposer | None = None) -> None:
        super().__init__()
        self.backbone, self.rpn, self.roi_heads = backbone, rpn, roi_heads
        self.num_classes = num_classes
        self.proposer = proposer if proposer is not None or rpn is not None else SlidingWindowProposals()

    @property
    def method(self) -> str:
        return "faster-rcnn" if self.rpn is not None else "fast-rcnn"

    @property
    def needs_data_init(self) -> bool:
        return self.backbone.needs_data_init

    def init_from_data(self, x: torch.Tensor) -> None:
        self.backbone.init_from_data(x)

    def propose(self, images: torch.Tensor, features: torch.Tensor | None = None, targets: list[dict] | None = None,
                proposals: list[torch.Tensor] | None = None, generator: torch.Generator | None = None
                ) -> tuple[list[torch.Tensor], dict]:
        """The proposals per image (and the RPN's losses when ``targets`` are given)."""
        if proposals is not None:
            return [p.to(images.device, torch.float32) for p in proposals], {}
        if self.rpn is not None:
            features = self.backbone(images) if features is None else features
            return self.rpn(features, tuple(images.shape[-2:]), targets, generator)
        return self.proposer(images), {}

    def forward(self, images: torch.Tensor, targets: list[dict] | None = None,
                proposals: list[torch.Tensor] | None = None):
        if self.training and targets is None:
            raise ValueError("a detector in training mode needs targets (a list of {'boxes', 'labels'} dicts)")
        if self.training:
            return self.losses(images, targets, proposals)
        features = self.backbone(images)
        proposals, _ = self.propose(images, features, None, proposals)
        return self.roi_heads(features, proposals, tuple(images.shape[-2:]))[0]

    def losses(self, images: torch.Tensor, targets: list[dict], proposals: list[torch.Tensor] | None = None,
               generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The named losses in the current mode (``eval()`` + a seeded ``generator``: a reproducible
        validation loss); ``forward`` in training mode calls this."""
        features = self.backbone(images)
        proposals, losses = self.propose(images, features, targets, proposals, generator)
        _, roi_losses = self.roi_heads(features, proposals, tuple(images.shape[-2:]), targets, generator)
        return {**losses, **roi_losses}

    # ------------------------------------------------------------------ inspect
    def inspect_view(self) -> nn.Module:
        """What ``cnnlab inspect`` traces (proposal selection and NMS are data-dependent): backbone, the RPN
        head and the box head on one whole-image RoI."""
        return TraceableTwoStage(self)

    def inspect_notes(self, rows) -> list[str]:
        """Lines under the table: stride, anchors per location, the receptive field of the RPN's 3x3 window."""
        stride = self.backbone.stride
        notes = [f"{self.method}: backbone {self.backbone.name}, feature stride {stride}"]
        if self.rpn is not None:
            rf = next((r.receptive_field for r in rows if r.name.endswith("rpn_head.conv")), None)
            a = self.rpn.anchors
            notes.append(f"RPN: {a.num_anchors} anchors per location (sizes {'/'.join(map(str, a.sizes))} px x "
                         f"ratios {'/'.join(map(str, a.ratios))}); its 3x3 window sees {rf} px of the input")
        else:
            notes.append("proposals from outside (selective search / a proposer); no RPN")
        notes.append(f"RoI head: {self.roi_heads.pool} {self.roi_heads.output_size}x{self.roi_heads.output_size}, "
                     "shown on one whole-image RoI; proposal selection and NMS are not traced")
        return notes


class TraceableTwoStage(nn.Module):
    """The detector's layers on a fixed path: ``x -> features -> (RPN head) -> box head(one RoI) -> logits``."""

    def __init__(self, det: TwoStageDetector) -> None:
        super().__init__()
        self.backbone = det.backbone
        self.rpn_head = det.rpn.head if det.rpn is not None else None
        self.roi_heads = det.roi_heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from cnnlab.detection.roi_heads import pool_rois

        features = self.backbone(x)
        if self.rpn_head is not None:
            self.rpn_head(features)
        h, w = x.shape[-2:]
        roi = [torch.tensor([[0.0, 0.0, float(w), float(h)]], device=x.device)] * len(x)
        heads = self.roi_heads
        logits, _ = heads.box_head(pool_rois(features, roi, heads.output_size, heads.stride, heads.pool))
        return logits


def build_detector(method: str, backbone: FeatureBackbone, num_classes: int, *, pool: str = "roi_pool",
                   sizes=SIZES, ratios=RATIOS, representation: int = 256, proposer: Proposer | None = None,
                   ) -> TwoStageDetector:
    """``faster-rcnn`` (RPN + Fast R-CNN head on one backbone) or ``fast-rcnn`` (proposals from outside)."""
    heads = RoIHeads(backbone.out_channels, backbone.stride, num_classes, pool=pool, representation=representation)
    if method == "faster-rcnn":
        return TwoStageDetector(backbone, heads, num_classes,
                                rpn=RegionProposalNetwork(backbone.out_channels, sizes, ratios))
    if method == "fast-rcnn":
        return TwoStageDetector(backbone, heads, num_classes, proposer=proposer)
    raise ValueError(f"method {method!r} is not one of faster-rcnn, fast-rcnn")
