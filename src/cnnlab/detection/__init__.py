"""Object detection (issue 22). D2's branch: YOLO v1, selective-search proposals, SPP, R-CNN / SPPNet."""

from cnnlab.detection import spp, yolo  # noqa: F401
