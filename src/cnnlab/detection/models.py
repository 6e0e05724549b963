"""Registry entries of the two-stage detectors (``task="detection"``): Faster R-CNN and Fast R-CNN on FastNet
(whitened stem), ResNet-18 and EfficientNet-Lite0, sized for 128x128 Fashion-MNIST scenes (11 classes with the
background, 1 channel). ``create_model("faster_rcnn_fastnet")`` obeys the contract of :mod:`cnnlab.detection`.

Options (``model_kwargs``): ``pool`` (``roi_pool`` / ``roi_align``), ``sizes`` and ``ratios`` of the anchors
(and of the sliding-window proposals of Fast R-CNN), ``proposals`` of Fast R-CNN (``"sliding-window"``, default,
or ``"selective-search"`` / a dict of its settings: R-CNN's proposals), ``representation`` (fc6/fc7 width),
FastNet's ``widths`` and ``stem``. The parameter counts are cnnlab designs, counted.
"""

from __future__ import annotations

from torch import nn

from cnnlab.detection.anchors import RATIOS, SIZES
from cnnlab.detection.backbones import build_backbone
from cnnlab.detection.two_stage import build_detector
from cnnlab.models import register_model

FASTER = "Ren, He, Girshick & Sun, Faster R-CNN: Towards Real-Time Object Detection with Region Proposal Networks, " \
         "NeurIPS 2015"
FAST = "Girshick, Fast R-CNN, ICCV 2015"
_COMMON = dict(task="detection", num_classes=11, in_chans=1, default_size=128, min_size=32,
               classifier="roi_heads.box_head.cls_score", mean=(0.2860,), std=(0.3530,),
               params_source="cnnlab design (counted)")
_FASTNET = dict(_COMMON, first_conv="backbone.body.stem.conv")
_RESNET = dict(_COMMON, first_conv="backbone.body.conv1")
_LITE = dict(_COMMON, first_conv="backbone.body.0.0")


PROPOSERS = ("sliding-window", "selective-search")


def _proposer(proposals: str | dict):
    """Fast R-CNN's outside proposals: ``"sliding-window"`` (every anchor shape on the stride-16 grid, the
    default), ``"selective-search"`` or a dict of its settings (R-CNN's proposals, as the paper uses)."""
    from cnnlab.detection.proposals import SelectiveSearchProposals

    if proposals == "sliding-window":
        return None
    if proposals == "selective-search" or isinstance(proposals, dict):
        return SelectiveSearchProposals(proposals if isinstance(proposals, dict) else None)
    raise ValueError(f"proposals must be one of {', '.join(PROPOSERS)} or a dict of selective-search settings, "
                     f"got {proposals!r}")


def _detector(method: str, backbone: str, num_classes: int, in_chans: int, pool: str = "roi_pool", sizes=SIZES,
              ratios=RATIOS, representation: int = 256, proposals: str | dict = "sliding-window",
              **backbone_kwargs) -> nn.Module:
    if num_classes < 2:
        raise ValueError(f"a detector needs num_classes >= 2 (background + objects), got {num_classes}")
    if method == "faster-rcnn" and proposals != "sliding-window":
        raise ValueError("Faster R-CNN makes its own proposals (the RPN); 'proposals' is a Fast R-CNN option")
    return build_detector(method, build_backbone(backbone, in_chans, **backbone_kwargs), num_classes, pool=pool,
                          sizes=sizes, ratios=ratios, representation=representation, proposer=_proposer(proposals))


@register_model(family="Faster R-CNN", paper=FASTER, params=2_293_677, **_FASTNET)
def faster_rcnn_fastnet(num_classes: int = 11, in_chans: int = 1, img_size: int = 128, **kwargs) -> nn.Module:
    """Faster R-CNN on FastNet (whitened stem, widths 32-64-96-128, stride 16): RPN with 9 anchors + RoI head."""
    return _detector("faster-rcnn", "fastnet", num_classes, in_chans, **kwargs)


@register_model(family="Fast R-CNN", paper=FAST, params=2_139_127, **_FASTNET)
def fast_rcnn_fastnet(num_classes: int = 11, in_chans: int = 1, img_size: int = 128, **kwargs) -> nn.Module:
    """Fast R-CNN on FastNet: external proposals (default: sliding windows) + RoI pooling head."""
    return _detector("fast-rcnn", "fastnet", num_classes, in_chans, **kwargs)


@register_model(family="Faster R-CNN", paper=FASTER, params=6_671_917, **_RESNET)
def faster_rcnn_resnet18(num_classes: int = 11, in_chans: int = 1, img_size: int = 128, **kwargs) -> nn.Module:
    """Faster R-CNN on ResNet-18 up to layer3 (C4, stride 16, 256 channels)."""
    return _detector("faster-rcnn", "resnet18", num_classes, in_chans, **kwargs)


@register_model(family="Fast R-CNN", paper=FAST, params=6_067_959, **_RESNET)
def fast_rcnn_resnet18(num_classes: int = 11, in_chans: int = 1, img_size: int = 128, **kwargs) -> nn.Module:
    """Fast R-CNN on ResNet-18 C4."""
    return _detector("fast-rcnn", "resnet18", num_classes, in_chans, **kwargs)


@register_model(family="Faster R-CNN", paper=FASTER, params=2_304_413, **_LITE)
def faster_rcnn_efficientnet_lite0(num_classes: int = 11, in_chans: int = 1, img_size: int = 128,
                                   **kwargs) -> nn.Module:
    """Faster R-CNN on EfficientNet-Lite0's stages 1-5 (stride 16, 112 channels)."""
    return _detector("faster-rcnn", "efficientnet_lite0", num_classes, in_chans, **kwargs)
