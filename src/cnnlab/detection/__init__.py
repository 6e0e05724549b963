"""Object detection: R-CNN -> SPPNet -> Fast R-CNN -> Faster R-CNN -> YOLO v1 (issue 22).

Model contract (torchvision's ``generalized_rcnn`` shape, without its 800-px resize): ``model(images, targets)``
with float ``[B, C, H, W]`` images (normalised, fixed size) and targets a list of B dicts ``{"boxes": [n, 4] xyxy
pixels, "labels": int64 [n] in 1..K-1}`` (class 0 = background); ``model.train()`` -> dict of named scalar losses,
``model.eval()`` -> list of B dicts ``{"boxes", "labels", "scores"}``.
"""
