"""Object detection: R-CNN -> SPPNet -> Fast R-CNN -> Faster R-CNN -> YOLO v1 (the lectures' story of speed-ups).

Model contract (torchvision's ``generalized_rcnn`` shape, without its 800-px resize): ``model(images, targets)``
with float ``[B, C, H, W]`` images (normalised, fixed size) and targets a list of B dicts ``{"boxes": [n, 4] xyxy
pixels, "labels": int64 [n] in 1..K-1}`` (class 0 = background); ``model.train()`` -> dict of named scalar losses,
``model.eval()`` -> list of B dicts ``{"boxes", "labels", "scores"}``.

``create_model("faster_rcnn_fastnet")`` (registered with ``task="detection"``); ``TrainConfig(task="detection")``;
the teaching parts: :mod:`~cnnlab.detection.boxes`, :mod:`~cnnlab.detection.anchors`,
:mod:`~cnnlab.detection.rpn`, :mod:`~cnnlab.detection.roi_heads`.
"""

from cnnlab.detection import models, task, yolo  # noqa: F401 - register the detectors and the detection task
from cnnlab.detection.anchors import AnchorGrid, anchor_grid, cell_anchors
from cnnlab.detection.backbones import build_backbone
from cnnlab.detection.boxes import decode, encode, match, sample_balanced
from cnnlab.detection.metrics import DetectionMeter, detection_scores
from cnnlab.detection.roi_heads import RoIHeads, postprocess
from cnnlab.detection.rpn import RegionProposalNetwork, RPNHead, select_proposals
from cnnlab.detection.task import DetectionTask
from cnnlab.detection.two_stage import SlidingWindowProposals, TwoStageDetector, build_detector

__all__ = ["AnchorGrid", "DetectionMeter", "DetectionTask", "RPNHead", "RegionProposalNetwork", "RoIHeads",
           "SlidingWindowProposals", "TwoStageDetector", "anchor_grid", "build_backbone", "build_detector",
           "cell_anchors", "decode", "detection_scores", "encode", "match", "postprocess", "sample_balanced",
           "select_proposals"]
